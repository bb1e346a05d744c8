"""Start-up of the train CLI: wall time of `--help` and `--cfg job`, and what they import.

    python -m xray_exp.bench startup                 # 10 interleaved runs of each, target median < 1.5 s
    python -m xray_exp.bench startup --reps 20 --args="--help" --args "model=yolo12x hardware=gpu --cfg job"

Each command runs as a fresh process (spawn to exit, as a user waits for it); `python -c pass` runs in the
same rounds as the floor the interpreter itself costs. A separate run of each command with
PYTHONPROFILEIMPORTTIME=1 lists what was imported: torch, ultralytics, ray and mlflow must not be (they
cost seconds and are only needed once a run starts).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

from xray_exp.bench.common import (
    REPO,
    child_env,
    envelope,
    format_text_table,
    interleave,
    load_average,
    run_process,
    summarize,
    usable_cpus,
    verdict,
    write_result,
)

NAME = "startup"
TARGET_S = 1.5
HEAVY = ("torch", "ultralytics", "ray", "mlflow")
BASELINE = "python -c pass"
IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


class ImportProfile(TypedDict):
    """What -X importtime says about one command."""

    modules_imported: int
    heavy: list[str]
    top_level_ms: list[tuple[str, float]]


def parse_importtime(stderr: str) -> list[dict[str, Any]]:
    """PYTHONPROFILEIMPORTTIME lines -> [{module, self_us, cumulative_us, depth}] in the order printed."""
    out = []
    for line in stderr.splitlines():
        m = IMPORT_LINE.match(line)
        if m:
            out.append(
                {
                    "module": m.group(4),
                    "self_us": int(m.group(1)),
                    "cumulative_us": int(m.group(2)),
                    "depth": (len(m.group(3)) - 1) // 2,
                }
            )
    return out


def heavy_imports(entries: list[dict[str, Any]], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The heavy top-level packages that were imported at all (any submodule counts)."""
    seen = {e["module"].split(".")[0] for e in entries}
    return sorted(seen & set(heavy))


def top_level_costs(entries: list[dict[str, Any]], n: int = 8) -> list[tuple[str, float]]:
    """Top-level packages by the time their first import took (cumulative, ms), largest first.

    A package imported from several places appears once per first import; the cumulative figure of each
    outermost line already contains its nested imports, so nested lines are not added again.
    """
    costs: dict[str, float] = {}
    for e in entries:
        if e["depth"] == 0:
            top = e["module"].split(".")[0]
            costs[top] = costs.get(top, 0.0) + e["cumulative_us"] / 1000
    return sorted(costs.items(), key=lambda kv: -kv[1])[:n]


def commands(train_args: list[list[str]]) -> dict[str, list[str]]:
    cmds = {BASELINE: [sys.executable, "-c", "pass"]}
    for args in train_args:
        cmds["xray_exp.train " + shlex.join(args)] = [sys.executable, "-m", "xray_exp.train", *args]
    return cmds


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m xray_exp.bench startup", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument(
        "--args",
        action="append",
        metavar="ARGS",
        help='train CLI arguments to time, quoted, with "=" when they start with "-" '
        '(--args="--cfg job"); repeatable; default "--help" and "--cfg job"',
    )
    parser.add_argument("--order", choices=("abab", "abba"), default="abba")
    parser.add_argument("--out-dir", type=Path, help="JSON folder (default outputs/bench)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    started = time.time()
    train_args = [shlex.split(a) for a in (args.args or ["--help", "--cfg job"])]
    cmds = commands(train_args)
    with tempfile.TemporaryDirectory(prefix="xray_bench_startup_") as root:
        env = child_env(XRAY_EXP_ROOT=root)
        env.pop("PYTHONPROFILEIMPORTTIME", None)
        for cmd in cmds.values():  # warm the page cache once; not measured
            run_process(cmd, env=env, cwd=REPO)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        cpu: dict[str, list[float]] = {k: [] for k in cmds}
        failed: dict[str, int] = {}
        loads = [load_average()]
        for label, _ in interleave(list(cmds), args.reps, args.order):
            timing = run_process(cmds[label], env=env, cwd=REPO)
            if timing.returncode != 0:
                failed[label] = timing.returncode
            times[label].append(timing.wall_s)
            cpu[label].append(timing.cpu_s)
        loads.append(load_average())
        imports: dict[str, ImportProfile] = {}
        for label, cmd in cmds.items():
            if label == BASELINE:
                continue
            proc = subprocess.run(
                cmd, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=REPO, capture_output=True, text=True, timeout=300
            )
            entries = parse_importtime(proc.stderr)
            imports[label] = {
                "modules_imported": len(entries),
                "heavy": heavy_imports(entries),
                "top_level_ms": top_level_costs(entries),
            }
    results: dict[str, Any] = {"commands": {}, "imports": imports, "failed": failed, "load_average_before_after": loads}
    rows = []
    floor = summarize(times[BASELINE])["median"]
    for label, values in times.items():
        stats = summarize(values)
        is_train = label != BASELINE
        v = verdict(stats["median"], TARGET_S) if is_train else ""
        cpu_s = summarize(cpu[label])
        results["commands"][label] = {
            **stats,
            "times_s": values,
            "cpu_s": cpu_s,
            "cpu_times_s": cpu[label],
            "target_s": TARGET_S if is_train else None,
            "verdict": v or None,
        }
        profile = imports.get(label)  # none for the baseline
        heavy = profile["heavy"] if profile else None
        rows.append(
            [
                label,
                stats["median"],
                stats["min"],
                stats["max"],
                cpu_s["median"],
                stats["median"] - floor if is_train else None,
                f"< {TARGET_S}" if is_train else "",
                v,
                ("none" if not heavy else ", ".join(heavy)) if is_train else "",
            ]
        )
    print(
        format_text_table(
            [
                "command",
                "median s",
                "min s",
                "max s",
                "CPU s (median)",
                "above python -c pass",
                "target",
                "verdict",
                "heavy imports",
            ],
            rows,
        )
    )
    print(f"load average (1 min) before/after: {loads[0]} / {loads[1]} on {usable_cpus()} usable cores")
    for label, info in imports.items():
        top = ", ".join(f"{name} {ms:.0f}" for name, ms in info["top_level_ms"])
        print(f"{label}: {info['modules_imported']} modules; slowest top-level imports (ms): {top}")
    if failed:
        print(f"FAILED commands (exit codes): {failed}", file=sys.stderr)
    settings = {
        "reps": args.reps,
        "order": args.order,
        "commands": {k: v[1:] for k, v in cmds.items()},
        "heavy_modules": list(HEAVY),
    }
    path = write_result(NAME, envelope(NAME, argv, settings, results, started), args.out_dir)
    print(f"wrote {path}")
    missed = (
        failed
        or any(c["verdict"] == "FAIL" for c in results["commands"].values())
        or any(i["heavy"] for i in imports.values())
    )
    return 1 if failed or (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
