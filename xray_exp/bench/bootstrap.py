"""Bootstrap confidence intervals from cached matches: seconds for 1000 resamples of a test split.

    python -m xray_exp.bench bootstrap                     # 3,000 images, 10,000 detections, 1000 resamples
    python -m xray_exp.bench bootstrap --reps 5 --images 3000 --detections 10000 --n-boot 1000 --paired

A synthetic VinBigData-like split (14 classes, 70 % normal images, 1-5 lesions per abnormal image;
detections: jittered true positives, duplicates and false positives with random scores) is evaluated
once (`evaluate_records`, timed), then `bootstrap_ci` runs --reps times (median reported; target
< 10 s for 1000 resamples). `--paired` also times `paired_comparison` of two such models.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from xray_exp.bench.common import (
    envelope,
    format_text_table,
    load_average,
    summarize,
    usable_cpus,
    verdict,
    write_result,
)
from xray_exp.metrics import bootstrap_ci, evaluate_records, paired_comparison

NAME = "bootstrap"
TARGET_S = 10.0
NUM_CLASSES = 14


def synthetic_split(
    n_images: int = 3000,
    n_detections: int = 10000,
    seed: int = 0,
    num_classes: int = NUM_CLASSES,
    normal_share: float = 0.7,
) -> tuple[list[dict], list[dict]]:
    """(preds, gts) records with exactly `n_detections` detections spread over the images."""
    rng = np.random.default_rng(seed)
    gts = []
    for i in range(n_images):
        n = 0 if rng.random() < normal_share else int(rng.integers(1, 6))
        xy = rng.uniform(0, 900, (n, 2))
        gts.append(
            {
                "image_id": f"img{i:05d}",
                "boxes": np.c_[xy, xy + rng.uniform(20, 200, (n, 2))],
                "labels": rng.integers(0, num_classes, n),
            }
        )
    per_image = rng.multinomial(n_detections, np.full(n_images, 1.0 / n_images))
    preds = []
    for g, m in zip(gts, per_image, strict=True):
        n = len(g["labels"])
        on_lesion = rng.random(m) < (0.6 if n else 0.0)
        pick = rng.integers(0, max(n, 1), m)
        boxes = np.empty((m, 4))
        labels = rng.integers(0, num_classes, m)
        if n:
            size = np.tile(g["boxes"][pick, 2:] - g["boxes"][pick, :2], 2)
            jittered = g["boxes"][pick] + rng.normal(0, 0.1, (m, 4)) * size
            boxes[on_lesion] = jittered[on_lesion]
            labels[on_lesion] = g["labels"][pick][on_lesion]
        xy = rng.uniform(0, 900, (m, 2))
        boxes[~on_lesion] = np.c_[xy, xy + rng.uniform(20, 200, (m, 2))][~on_lesion]
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        scores = np.clip(rng.beta(2, 2, m) + 0.25 * on_lesion, 0, 1)
        preds.append({"image_id": g["image_id"], "boxes": boxes, "labels": labels, "scores": scores})
    return preds, gts


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m xray_exp.bench bootstrap", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--detections", type=int, default=10000)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3, help="timed bootstrap runs (default 3)")
    parser.add_argument("--paired", action="store_true", help="also time paired_comparison of two models")
    parser.add_argument("--out-dir", type=Path, help="JSON folder (default outputs/bench)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)

    started = time.time()
    names = [f"class{c}" for c in range(NUM_CLASSES)]
    preds, gts = synthetic_split(args.images, args.detections, seed=0)
    loads = [load_average()]
    result, evaluate_s = timed(evaluate_records, preds, gts, names)
    boot_s: list[float] = []
    ci: dict[str, tuple[float, float]] = {}
    for rep in range(args.reps):
        ci, seconds = timed(bootstrap_ci, result, n_boot=args.n_boot, seed=rep)
        boot_s.append(seconds)
    paired_s = None
    if args.paired:
        other, _ = timed(evaluate_records, synthetic_split(args.images, args.detections, seed=1)[0], gts, names)
        _, paired_s = timed(paired_comparison, result, other, n_boot=args.n_boot)
    loads.append(load_average())
    stats = summarize(boot_s)
    v = verdict(stats["median"], TARGET_S) if args.n_boot == 1000 else ""
    rows = [
        ["evaluate_records (matching, once)", evaluate_s, "", ""],
        [f"bootstrap_ci, {args.n_boot} resamples (median of {args.reps})", stats["median"], f"< {TARGET_S:g}", v],
    ]
    if paired_s is not None:
        rows.append([f"paired_comparison, {args.n_boot} resamples", paired_s, "", ""])
    print(
        f"{args.images} images, {sum(len(p['labels']) for p in preds)} detections, "
        f"{sum(len(g['labels']) for g in gts)} lesions, {NUM_CLASSES} classes"
    )
    print(format_text_table(["step", "seconds", "target", "verdict"], rows))
    print("95% intervals: " + ", ".join(f"{k} [{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in ci.items()))
    print(f"load average (1 min) before/after: {loads[0]} / {loads[1]} on {usable_cpus()} usable cores")
    results = {
        "evaluate_s": evaluate_s,
        "bootstrap_s": stats,
        "bootstrap_times_s": boot_s,
        "paired_s": paired_s,
        "target_s": TARGET_S,
        "verdict": v or None,
        "ci": ci,
        "load_average_before_after": loads,
    }
    settings = {
        "images": args.images,
        "detections": args.detections,
        "n_boot": args.n_boot,
        "reps": args.reps,
        "classes": NUM_CLASSES,
    }
    path = write_result(NAME, envelope(NAME, argv, settings, results, started), args.out_dir)
    print(f"wrote {path}")
    return 1 if args.check and v == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
