"""Framework overhead: `python -m xray_exp.train` vs bare `YOLO("yolo12n.yaml").train(...)`, same data, same kwargs.

    python -m xray_exp.bench overhead                       # CPU preset, 4 interleaved pairs (~3 min on 2 cores)
    python -m xray_exp.bench overhead --reps 5 --epochs 3 --images 32 --imgsz 160
    python -m xray_exp.bench overhead --hardware gpu --images 512 --imgsz 640   # on a GPU machine (target 1.02)

Both sides run as subprocesses through `xray_exp.bench.instrument`, which times the `Model.train(...)` call
itself and the epochs inside it. Side A is the real CLI (tracking and post-training steps switched off);
side B is `xray_exp.bench.bare_train` with the kwargs the seam (`to_train_args`) produces for the same
composed config -- the benchmark checks that A's Ultralytics received exactly those kwargs. Repetitions are
interleaved (A B A B ...; --order abba reverses every other round); the ratio is the median of the per-pair
ratios A_i / B_i. Reported: the training call, the whole process (spawn to exit, as the parent sees it)
and the CPU seconds of each process tree (less sensitive to other load on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xray_exp import CONF_DIR
from xray_exp.bench.common import (
    REPO,
    ProcessTiming,
    child_env,
    envelope,
    format_text_table,
    interleave,
    load_average,
    paired_ratios,
    ratio,
    run_process,
    summarize,
    tail,
    verdict,
    write_result,
)
from xray_exp.yolo.runtime import apply_ultralytics_settings, configure_offline

NAME = "overhead"
SIDES = {"A": "xray_exp.train", "B": "bare Ultralytics"}
TARGETS = {"cpu": 1.03, "gpu": 1.02}
# Everything after training is switchable; the comparison is about the training run itself.
FIXED_OVERRIDES = (
    "tracking=disabled",
    "post.samples=0",
    "post.onnx=false",
    "post.eval_splits=[]",
    "objective.metric=ultralytics/val/mAP50-95",
)
# Ultralytics kwargs that name the run folder: the only ones allowed to differ between the sides.
RUN_NAMING_KEYS = ("project", "name")
MEASURES = (
    "wall_s",
    "train_call_s",
    "outside_call_s",
    "epochs_s",
    "cpu_s",
    "call_cpu_s",
    "outside_call_cpu_s",
    "epochs_cpu_s",
)


def train_overrides(
    data_yaml: Path, epochs: int, imgsz: int, hardware: str, extra: list[str], plots: bool = False
) -> list[str]:
    """The xray_exp.train overrides both sides are composed from (side A gets run_name=... added).

    Plots are off by default: Ultralytics' matplotlib plots cost seconds on both sides and would dilute the
    ratio (turning them off makes the comparison stricter, not kinder).
    """
    return [
        "dataset=yolo",
        f"dataset.data_yaml={data_yaml}",
        f"train.epochs={epochs}",
        f"train.imgsz={imgsz}",
        f"hardware={hardware}",
        f"train.plots={str(plots).lower()}",
        *FIXED_OVERRIDES,
        *extra,
    ]


def compose_train_config(overrides: list[str], root: Path):
    """Compose xray_exp/conf/train.yaml as the CLI does (paths.root = the benchmark's work folder)."""
    from hydra import compose, initialize_config_dir

    from xray_exp.config.store import register_configs  # lazy: heavy (hydra, omegaconf, yaml)

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        return compose("train", overrides=[*overrides, f"paths.root={root}"])


def kwargs_difference(
    recorded: dict[str, Any], expected: dict[str, Any], ignore: tuple[str, ...] = RUN_NAMING_KEYS
) -> dict[str, list[Any]]:
    """Keys whose values differ between two kwargs dicts (run-naming keys ignored): {key: [recorded, expected]}."""
    keys = (set(recorded) | set(expected)) - set(ignore)
    return {
        k: [recorded.get(k, "<missing>"), expected.get(k, "<missing>")]
        for k in sorted(keys)
        if recorded.get(k, "<missing>") != expected.get(k, "<missing>")
    }


def sample_from(
    side: str, rep: int, timing: ProcessTiming, record: dict[str, Any] | None, load_before: float | None
) -> dict:
    """One measured run: the parent's process timing plus what the instrumented child recorded."""
    call = (record or {}).get("train_call_s")
    call_cpu = (record or {}).get("train_call_cpu_s")
    return {
        "side": side,
        "rep": rep,
        "returncode": timing.returncode,
        "wall_s": timing.wall_s,
        "cpu_s": timing.cpu_s,
        "max_rss_mib": timing.max_rss_mib,
        "train_call_s": call,
        "outside_call_s": timing.wall_s - call if call is not None else None,
        "call_cpu_s": call_cpu,
        "outside_call_cpu_s": timing.cpu_s - call_cpu if call_cpu is not None else None,
        "epochs_s": (record or {}).get("epochs_s"),
        "epochs_cpu_s": (record or {}).get("epochs_cpu_s"),
        "setup_s": (record or {}).get("setup_s"),
        "load_average_before": load_before,
    }


def analyse(samples: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """Per-side summaries, paired A/B ratios per measure, the extra seconds of A, and the verdicts."""
    by_side = {s: sorted((x for x in samples if x["side"] == s), key=lambda x: x["rep"]) for s in SIDES}
    reps = sorted({x["rep"] for x in by_side["A"]} & {x["rep"] for x in by_side["B"]})
    a = {x["rep"]: x for x in by_side["A"]}
    b = {x["rep"]: x for x in by_side["B"]}
    summary = {
        s: {m: summarize([v for x in by_side[s] if (v := x.get(m)) is not None]) for m in MEASURES} for s in SIDES
    }
    ratios: dict[str, dict[str, Any]] = {}  # summary, the pairs and the ratio of medians
    extra_seconds: dict[str, dict[str, float]] = {}
    for m in MEASURES:
        if m.startswith("outside_"):
            continue
        pairs = paired_ratios([a[r].get(m) for r in reps], [b[r].get(m) for r in reps])
        ratios[m] = {
            **summarize(pairs),
            "pairs": pairs,
            "ratio_of_medians": ratio(summary["A"][m]["median"], summary["B"][m]["median"]),
        }
    for m in MEASURES:
        diffs = [a[r][m] - b[r][m] for r in reps if a[r].get(m) is not None and b[r].get(m) is not None]
        extra_seconds[m] = summarize(diffs)
    verdicts = {
        "train_call": verdict(ratios["train_call_s"]["median"], target),
        "whole_process": verdict(ratios["wall_s"]["median"], target),
    }
    return {
        "pairs": len(reps),
        "summary": summary,
        "ratios": ratios,
        "extra_seconds_A_minus_B": extra_seconds,
        "target_ratio": target,
        "verdicts": verdicts,
    }


HEADERS = {
    "wall_s": "process wall s",
    "train_call_s": "train call s",
    "outside_call_s": "outside the call s",
    "epochs_s": "epochs s",
    "cpu_s": "CPU s (process tree)",
    "call_cpu_s": "CPU s in the call",
    "outside_call_cpu_s": "CPU s outside the call",
    "epochs_cpu_s": "CPU s in epochs",
}
RATIO_NAMES = {
    "train_call_s": "training call (wall)",
    "wall_s": "whole process (wall)",
    "epochs_s": "epochs (wall)",
    "call_cpu_s": "training call (CPU s)",
    "epochs_cpu_s": "epochs (CPU s, main process)",
    "cpu_s": "whole process (CPU s)",
}
VERDICT_OF = {"train_call_s": "train_call", "wall_s": "whole_process"}


def overhead_report_tables(analysis: dict[str, Any]) -> str:
    s, r, t = analysis["summary"], analysis["ratios"], analysis["target_ratio"]
    side_rows = [[f"{k} ({SIDES[k]})", *(s[k][m]["median"] for m in MEASURES)] for k in SIDES]
    sides = format_text_table(["median over reps", *(HEADERS[m] for m in MEASURES)], side_rows)
    ratio_rows = []
    for m, name in RATIO_NAMES.items():
        v = analysis["verdicts"].get(VERDICT_OF.get(m, ""), "")
        ratio_rows.append(
            [name, r[m]["median"], r[m]["min"], r[m]["max"], r[m]["ratio_of_medians"], f"<= {t}" if v else "", v]
        )
    ratios = format_text_table(
        ["A / B", "median of pairs", "min", "max", "ratio of medians", "target", "verdict"], ratio_rows
    )
    x = {m: v["median"] for m, v in analysis["extra_seconds_A_minus_B"].items()}
    note = (
        f"A - B per pair (median): process {x['wall_s']:+.2f} s wall / {x['cpu_s']:+.2f} s CPU; training call "
        f"{x['train_call_s']:+.2f} s wall / {x['call_cpu_s']:+.2f} s CPU; outside the call "
        f"{x['outside_call_s']:+.2f} s wall / {x['outside_call_cpu_s']:+.2f} s CPU ({analysis['pairs']} pairs)"
    )
    return f"{sides}\n\n{ratios}\n\n{note}"


def run_side(side: str, rep: int | str, ctx: dict[str, Any]) -> tuple[ProcessTiming, dict[str, Any]]:
    """Run one side once; returns (ProcessTiming, the instrument record)."""
    work: Path = ctx["work"]
    tag = f"{side.lower()}-{rep}"
    record_path = work / "records" / f"{tag}.json"
    log_path = work / "logs" / f"{tag}.log"
    run_name = f"bench-overhead-{tag}"
    if side == "A":
        target = [SIDES["A"], *ctx["overrides"], f"run_name={run_name}"]
    else:
        from xray_exp.yolo.args import to_train_args  # lazy: only on this path

        kwargs = to_train_args(ctx["cfg"], ctx["data_yaml"], ctx["root"] / "outputs" / "runs" / run_name)
        kwargs_path = work / "kwargs" / f"{tag}.json"
        kwargs_path.write_text(json.dumps(kwargs, indent=2))
        target = ["xray_exp.bench.bare_train", "--arch", ctx["arch"], "--kwargs", str(kwargs_path)]
    cmd = [sys.executable, "-m", "xray_exp.bench.instrument", str(record_path), *target]
    timing = run_process(cmd, env=ctx["env"], cwd=REPO, log_path=log_path, timeout=ctx["timeout"])
    record: dict[str, Any] | None = json.loads(record_path.read_text()) if record_path.is_file() else None
    if timing.returncode != 0 or record is None or not record.get("ok"):
        raise RuntimeError(
            f"side {side} ({SIDES[side]}) run {rep} failed (exit {timing.returncode}"
            f"{', timed out' if timing.timed_out else ''}); log {log_path}:\n{tail(log_path)}"
        )
    return timing, record


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m xray_exp.bench overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4, help="measured pairs (default 4)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unmeasured runs of side A first (label cache, page cache, settings); default 1",
    )
    parser.add_argument("--order", choices=("abab", "abba"), default="abab")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=16, help="synthetic train images (val: a quarter, >= 4)")
    parser.add_argument("--imgsz", type=int, default=128, help="image and training size (px)")
    parser.add_argument("--hardware", default="cpu", help="hardware preset (xray_exp/conf/hardware): cpu, gpu")
    parser.add_argument("--plots", action="store_true", help="keep Ultralytics' plots on (default off)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra xray_exp.train override for both sides (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--work-dir", type=Path, help="keep everything here (default: a temporary folder, removed)")
    parser.add_argument("--out-dir", type=Path, help="JSON folder (default outputs/bench)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be >= 1")
    started = time.time()
    root = (args.work_dir or Path(tempfile.mkdtemp(prefix="xray_bench_overhead_"))).resolve()
    work = root / "bench"
    for sub in ("records", "logs", "kwargs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    try:
        ctx = prepare_context(args, root, work)
        print(
            f"overhead: {SIDES['A']} vs {SIDES['B']}, {args.images} images at {args.imgsz} px, {args.epochs} "
            f"epochs, hardware={args.hardware}, {args.warmup} warm-up + {args.reps} pairs ({args.order})",
            flush=True,
        )
        for i in range(args.warmup):
            timing, _ = run_side("A", f"warmup{i}", ctx)
            print(f"  warm-up A: {timing.wall_s:.1f} s", flush=True)
        samples, recorded_kwargs = [], None
        for side, rep in interleave(list(SIDES), args.reps, args.order):
            load_before = load_average()
            timing, record = run_side(side, rep, ctx)
            samples.append(sample_from(side, rep, timing, record, load_before))
            if side == "A" and recorded_kwargs is None:
                recorded_kwargs = record["train_kwargs"]
            print(
                f"  {side}{rep}: process {timing.wall_s:6.2f} s  train call {record['train_call_s']:6.2f} s  "
                f"CPU {timing.cpu_s:6.2f} s  (load {load_before})",
                flush=True,
            )
    except RuntimeError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        print(f"work folder kept: {root}", file=sys.stderr)
        return 1
    from xray_exp.yolo.args import to_train_args  # lazy: heavy (omegaconf, yaml)

    expected = to_train_args(ctx["cfg"], ctx["data_yaml"], root / "outputs" / "runs" / "x")
    diff = kwargs_difference(recorded_kwargs or {}, expected)
    device = str(expected.get("device", "cpu"))
    target = TARGETS["cpu"] if device == "cpu" else TARGETS["gpu"]
    analysis = analyse(samples, target)
    print()
    print(overhead_report_tables(analysis))
    print(f"same Ultralytics kwargs on both sides: {'yes' if not diff else f'NO, differing: {diff}'}")
    settings = {
        "reps": args.reps,
        "warmup": args.warmup,
        "order": args.order,
        "epochs": args.epochs,
        "images": args.images,
        "imgsz": args.imgsz,
        "hardware": args.hardware,
        "plots": args.plots,
        "overrides": ctx["overrides"],
        "arch": ctx["arch"],
        "train_kwargs": expected,
    }
    payload = envelope(
        NAME,
        argv,
        settings,
        {**analysis, "kwargs_identical": not diff, "kwargs_difference": diff, "samples": samples},
        started,
        sides=SIDES,
    )
    path = write_result(NAME, payload, args.out_dir)
    print(f"wrote {path}")
    if args.work_dir is None:
        shutil.rmtree(root, ignore_errors=True)
    missed = diff or any(v != "PASS" for v in analysis["verdicts"].values())
    return 1 if args.check and missed else 0


def prepare_context(args, root: Path, work: Path) -> dict[str, Any]:
    """Data, composed config, shared Ultralytics settings folder and the children's environment."""
    settings_dir = root / "outputs" / ".ultralytics"
    configure_offline(settings_dir)  # the same folder the CLI side uses: both read one settings.json
    from xray_exp.data.synthetic import ensure_synthetic_dataset  # lazy: looked up at call time (tests replace it)

    data_yaml = ensure_synthetic_dataset(
        root / "outputs" / ".cache" / "datasets",
        num_train=args.images,
        num_val=max(4, args.images // 4),
        num_test=2,
        image_size=args.imgsz,
    )
    overrides = train_overrides(data_yaml, args.epochs, args.imgsz, args.hardware, args.override, args.plots)
    cfg = compose_train_config(overrides, root)
    apply_ultralytics_settings(settings_dir / "runs")  # integrations off for side B too (A does it itself)
    # As from a shell: not this process's environment, which importing Ultralytics has edited (OMP_NUM_THREADS).
    env = child_env(settings_dir, XRAY_EXP_ROOT=str(root), PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    return {
        "root": root,
        "work": work,
        "data_yaml": data_yaml,
        "overrides": overrides,
        "cfg": cfg,
        "arch": str(cfg.model.arch),
        "env": env,
        "timeout": args.timeout,
    }


if __name__ == "__main__":
    sys.exit(main())
