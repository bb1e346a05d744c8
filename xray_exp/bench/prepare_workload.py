"""One pass of the data-preparation workload: synthetic 12/16-bit DICOMs -> YOLO PNGs, images/s per process count.

    from xray_exp.bench.prepare_workload import measure_prepare_throughput
    result = measure_prepare_throughput(images=32, size=(2048, 2500), workers=[1, 2], longest_side=1024)

The DICOMs are written once to a temporary folder (VinDr-sized, 3 readers per image, WBF fusion on); every
worker count converts them into a fresh output folder. images/s counts the conversion phase (decode, window,
fuse, resize, PNG encode, write); the wall time includes CSV parsing, header reads (patient ids), the split and
the dataset summary. `python -m xray_exp.bench prepare` calls this once per round.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xray_exp.prepare.config import compose_prepare_config
from xray_exp.prepare.fake_sources import make_vindr_source
from xray_exp.prepare.pipeline import default_workers, run_prepare


def _convert_once(source_root: Path, out_dir: Path, workers: int, longest_side: int) -> dict[str, Any]:
    cfg = compose_prepare_config(
        [
            "dataset=vindr_cxr",
            f"source={source_root}",
            f"out_dir={out_dir}",
            f"workers={workers}",
            f"longest_side={longest_side}",
            "progress=false",
        ]
    )
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    report = run_prepare(cfg)
    wall = time.perf_counter() - started
    converted = report["images"]["converted_now"]
    return {
        "workers": workers,
        "images": converted,
        "images_per_second": report["images"]["images_per_second"],
        "wall_seconds": round(wall, 2),
        "wall_images_per_second": round(converted / wall, 2),
        "load_average_1min_before": round(load_before, 2),
    }


def measure_prepare_throughput(
    images: int, size: tuple[int, int], workers: Sequence[int], longest_side: int, repeat: int = 1
) -> dict[str, Any]:
    """Convert `images` synthetic DICOMs of `size` (width, height) once per worker count (best of `repeat`)."""
    with tempfile.TemporaryDirectory(prefix="xray_exp_prepare_workload_") as tmp:
        started = time.perf_counter()
        source = make_vindr_source(Path(tmp) / "source", images=images, size=size, seed=1)
        megabytes = sum(p.stat().st_size for p in (source.root / "train").iterdir()) / 2**20
        print(
            f"wrote {images} DICOMs ({size[0]}x{size[1]}, 12/16-bit, {megabytes:.0f} MiB) "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        runs = []
        for count in workers:
            tries = [
                _convert_once(source.root, Path(tmp) / f"out_{count}_{attempt}", count, longest_side)
                for attempt in range(repeat)
            ]
            best = max(tries, key=lambda t: t["images_per_second"])
            runs.append({**best, "tries": [t["images_per_second"] for t in tries]})
            print(
                f"workers={count}: {best['images_per_second']} images/s converting, "
                f"{best['wall_images_per_second']} images/s end to end ({best['wall_seconds']} s; "
                f"load average before {best['load_average_1min_before']}; tries {runs[-1]['tries']})",
                flush=True,
            )
    return {
        "benchmark": "prepare",
        "images": images,
        "size": list(size),
        "repeat": repeat,
        "longest_side": longest_side,
        "cpu_count": os.cpu_count(),
        "usable_cores": default_workers(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "runs": runs,
    }
