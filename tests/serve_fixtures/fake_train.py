"""Stand-in for `python -m xray_exp.train` in the service's job tests: same contract, no training.

    python tests/serve_fixtures/fake_train.py mode=train model=yolo12n run_name=r1 train.epochs=3
        train.fake_sleep=0.5 [train.fake_fail=true] [train.fake_no_run_dir=true]

Knobs are `train.*` keys (on the service's override allow-list). The run folder is
<XRAY_EXP_ROOT or cwd>/outputs/runs/<run_name> (FAKE_TRAIN_OUT/<random> without run_name), like the real
one: config.resolved.yaml first, then one results.csv row per epoch (fake_sleep seconds each), then
summary.json ({run_dir, mlflow_run_id, metrics, registration, argv}) and the line RUN_DIR=<path>.
"""

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path


def main() -> int:
    args = dict(a.split("=", 1) for a in sys.argv[1:])
    print(f"fake training: {' '.join(sys.argv[1:])}", flush=True)
    if "run_name" in args:
        root = Path(os.environ.get("XRAY_EXP_ROOT") or os.getcwd())
        run_dir = root / "outputs" / "runs" / args["run_name"]
    else:
        root = Path(os.environ.get("FAKE_TRAIN_OUT") or tempfile.mkdtemp(prefix="fake-train-"))
        run_dir = root / uuid.uuid4().hex[:8]
    run_dir.mkdir(parents=True)
    epochs = int(args.get("train.epochs", "1"))
    (run_dir / "config.resolved.yaml").write_text(f"run_name: {run_dir.name}\ntrain:\n  epochs: {epochs}\n")
    with (run_dir / "results.csv").open("w") as f:
        f.write("                  epoch,      train/box_loss,  metrics/mAP50(B)\n")
    for epoch in range(1, epochs + 1):
        time.sleep(float(args.get("train.fake_sleep", "0")))
        with (run_dir / "results.csv").open("a") as f:
            f.write(f"{epoch:>23},{2.0 / epoch:>20.5f},{0.1 * epoch:>18.5f}\n")
        print(f"fake epoch {epoch}/{epochs}", flush=True)
    if args.get("train.fake_fail") == "true":
        print("fake failure: loss is NaN", flush=True)
        return 3
    summary = {
        "run_dir": str(run_dir),
        "mlflow_run_id": f"fake-{args.get('mode')}-{run_dir.name}",
        "metrics": {"test/mAP50-95": 0.125, "test/mAP50": 0.25},
        "registration": {"registered": True, "name": args.get("model"), "version": 7},
        "argv": sys.argv[1:],
        "token_seen": "XRAY_SERVE_TOKEN" in os.environ,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    if args.get("train.fake_no_run_dir") != "true":
        print(f"RUN_DIR={run_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
