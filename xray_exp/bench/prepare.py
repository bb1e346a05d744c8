"""Data preparation throughput (DICOM -> YOLO PNG) and how it scales with processes.

    python -m xray_exp.bench prepare                          # 32 VinDr-sized DICOMs, 1..N processes, 3 rounds
    python -m xray_exp.bench prepare --images 96 --workers 1 2 4 8 16 --rounds 3

The workload is xray_exp.bench.prepare_workload (synthetic 12/16-bit 2048x2500 DICOMs, 3 readers per image,
fusion on; images/s of the conversion phase and end to end). Each round runs it once with every worker count, the
order reversed every other round (1 2 4 .. then .. 4 2 1), so load drift on a shared machine is spread over
all counts; the figure per count is the median over rounds, and the speed-up is relative to 1 process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from xray_exp.bench.common import envelope, format_text_table, ratio, summarize, usable_cpus, write_result

NAME = "prepare"


def default_worker_counts(cores: int) -> list[int]:
    """1, 2, 4, ... up to the usable cores, and the core count itself."""
    counts, n = [], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return sorted(set(counts) | {max(cores, 1)})


def round_orders(workers: list[int], rounds: int) -> list[list[int]]:
    """Worker counts per round: ascending, then descending, alternately."""
    return [list(workers) if r % 2 == 0 else list(reversed(workers)) for r in range(rounds)]


def scaling_by_worker_count(per_round: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median images/s per worker count over rounds, speed-up vs 1 process, parallel efficiency."""
    by_workers: dict[int, dict[str, list[float]]] = {}
    for result in per_round:
        for run in result["runs"]:
            slot = by_workers.setdefault(int(run["workers"]), {"convert": [], "wall": [], "seconds": []})
            slot["convert"].append(float(run["images_per_second"]))
            slot["wall"].append(float(run["wall_images_per_second"]))
            slot["seconds"].append(float(run["wall_seconds"]))
    rows = []
    base = summarize(by_workers.get(1, {}).get("convert", []))["median"]
    base_wall = summarize(by_workers.get(1, {}).get("wall", []))["median"]
    for workers in sorted(by_workers):
        conv, wall = summarize(by_workers[workers]["convert"]), summarize(by_workers[workers]["wall"])
        speedup = ratio(conv["median"], base)
        rows.append(
            {
                "workers": workers,
                "convert_images_per_s": conv,
                "wall_images_per_s": wall,
                "wall_seconds": summarize(by_workers[workers]["seconds"]),
                "speedup_convert": speedup,
                "speedup_wall": ratio(wall["median"], base_wall),
                "efficiency": speedup / workers if speedup == speedup else None,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cores = usable_cpus()
    parser = argparse.ArgumentParser(prog="python -m xray_exp.bench prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, nargs=2, default=(2048, 2500), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--workers", type=int, nargs="+", help=f"process counts (default 1, 2, 4 .. {cores})")
    parser.add_argument("--longest-side", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="passes over all counts; median per count (default 3)")
    parser.add_argument("--out-dir", type=Path, help="JSON folder (default outputs/bench)")
    args = parser.parse_args(argv)
    started = time.time()
    workers = sorted(set(args.workers or default_worker_counts(cores)))
    from xray_exp.bench.prepare_workload import (
        measure_prepare_throughput,  # imports the preparation pipeline; lazy: heavy (omegaconf, yaml)
    )  # lazy: heavy (PIL, omegaconf, pydicom, requests)

    per_round = []
    for r, order in enumerate(round_orders(workers, args.rounds)):
        print(f"round {r + 1}/{args.rounds}: workers {order}", flush=True)
        per_round.append(measure_prepare_throughput(args.images, args.size, order, args.longest_side))
    rows = scaling_by_worker_count(per_round)
    print()
    print(
        format_text_table(
            [
                "processes",
                "images/s converting (median)",
                "min",
                "max",
                "images/s end to end",
                "speed-up",
                "efficiency",
            ],
            [
                [
                    x["workers"],
                    x["convert_images_per_s"]["median"],
                    x["convert_images_per_s"]["min"],
                    x["convert_images_per_s"]["max"],
                    x["wall_images_per_s"]["median"],
                    x["speedup_convert"],
                    x["efficiency"],
                ]
                for x in rows
            ],
        )
    )
    print(
        f"{args.images} DICOMs of {args.size[0]}x{args.size[1]} -> PNG, longest side {args.longest_side}; "
        f"{cores} usable cores; {args.rounds} rounds"
    )
    settings = {
        "images": args.images,
        "size": list(args.size),
        "workers": workers,
        "longest_side": args.longest_side,
        "rounds": args.rounds,
        "usable_cores": cores,
    }
    results = {"scaling": rows, "rounds": per_round}
    path = write_result(NAME, envelope(NAME, argv, settings, results, started), args.out_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
