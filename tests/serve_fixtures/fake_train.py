"""Stand-in for `python -m xray_exp.train` in the service's job tests: same contract, no training.

    python tests/serve_fixtures/fake_train.py mode=train model=yolo12n fake.sleep=0.5 [fake.fail=true]
        [fake.no_run_dir=true]

Writes <FAKE_TRAIN_OUT>/<n>/summary.json ({run_dir, mlflow_run_id, metrics, argv}) and prints RUN_DIR=<path>.
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
    time.sleep(float(args.get("fake.sleep", "0")))
    if args.get("fake.fail") == "true":
        print("fake failure: loss is NaN", flush=True)
        return 3
    root = Path(os.environ.get("FAKE_TRAIN_OUT") or tempfile.mkdtemp(prefix="fake-train-"))
    run_dir = root / uuid.uuid4().hex[:8]
    run_dir.mkdir(parents=True)
    summary = {
        "run_dir": str(run_dir),
        "mlflow_run_id": f"fake-{args.get('mode')}-{run_dir.name}",
        "metrics": {"test/mAP50-95": 0.125, "test/mAP50": 0.25},
        "argv": sys.argv[1:],
        "token_seen": "XRAY_SERVE_TOKEN" in os.environ,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    if args.get("fake.no_run_dir") != "true":
        print(f"RUN_DIR={run_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
