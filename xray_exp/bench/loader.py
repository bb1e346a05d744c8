"""Input pipeline: images/s the Ultralytics training loader delivers, per stage and per worker process, on CPU.

    python -m xray_exp.bench loader                                  # bare vs preset vs xray vs gray, 640 px
    python -m xray_exp.bench loader --variants preset --workers 0 1 2 --batches 12
    python -m xray_exp.bench loader --images 256 --unique 64 --imgsz 640 --batch 64

The GPU reference in docs/NOTES (bare Ultralytics, yolo12n on one H100) leaves the GPU idle a third of the
time: the input pipeline cannot keep up. That pipeline is CPU work, so its ceiling is measurable on any
machine: this benchmark builds the training dataset and `InfiniteDataLoader` exactly as Ultralytics'
DetectionTrainer does (`build_yolo_dataset` + `build_dataloader`, from the Ultralytics kwargs that our seam
produces for a composed config) and measures, without a model:

  stages   in-process cost per sample of each transform (mosaic incl. loading its 3 extra images, random
           perspective, HSV, flips, format) and of the collate, median over --samples samples
  loader   images/s the loader hands the training loop, for each --workers count (after one batch per worker,
           so worker start-up is excluded); scaling = images/s per worker

Variants (each the kwargs of a composed `python -m xray_exp.train` config, or bare Ultralytics defaults):
  bare      Ultralytics defaults (cache off, Ultralytics' augmentation)
  preset    hardware=gpu augmentation=default: our gpu preset (cache ram) with Ultralytics' augmentation
  xray      hardware=gpu augmentation=xray: the preset with the radiograph augmentation (no hue/saturation/shear)
  gray      the xray variant through xray_exp's one-channel loader (hardware.gray_loader, on by default for
            single-channel image sets; xray_exp/yolo/trainer.py): the same samples as `xray`, bit for bit

Per-core figures transfer to a GPU host: N loader workers deliver at most about N x (images/s per worker)
when they have N free cores, and the GPU waits whenever that is below what it consumes.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xray_exp.bench.common import (
    envelope,
    format_text_table,
    load_average,
    median,
    output_root,
    usable_cpus,
    write_result,
)
from xray_exp.bench.gpu import ensure_bench_dataset
from xray_exp.bench.overhead import compose_train_config
from xray_exp.yolo.bench import build_train_dataset, build_train_loader
from xray_exp.yolo.runtime import apply_ultralytics_settings, configure_offline

NAME = "loader"
VARIANTS: dict[str, tuple[str, ...] | None] = {
    "bare": None,
    "preset": ("hardware=gpu", "augmentation=default"),
    "xray": ("hardware=gpu", "augmentation=xray"),
    "gray": ("hardware=gpu", "augmentation=xray"),  # + the one-channel loader
}
DEFAULT_VARIANTS = ("bare", "preset", "xray", "gray")
# Pipeline arguments only: the loader does not care about the optimiser, the device or the run folder.
PIPELINE_KEYS = (
    "imgsz",
    "cache",
    "fraction",
    "hsv_h",
    "hsv_s",
    "hsv_v",
    "degrees",
    "translate",
    "scale",
    "shear",
    "perspective",
    "flipud",
    "fliplr",
    "mosaic",
    "mixup",
    "cutmix",
    "copy_paste",
    "copy_paste_mode",
    "erasing",
    "auto_augment",
    "close_mosaic",
    "single_cls",
    "classes",
    "rect",
    "compile",
)


def loader_variant_kwargs(variant: str, data_yaml: Path, imgsz: int, root: Path) -> dict[str, Any]:
    """Ultralytics kwargs of a variant's pipeline: from the seam for a composed config, or bare defaults."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
    preset = VARIANTS[variant]
    if preset is None:
        return {"data": str(data_yaml), "imgsz": imgsz}
    from xray_exp.yolo.args import to_train_args  # lazy: heavy (omegaconf, yaml)

    overrides = [*preset, "dataset=yolo", f"dataset.data_yaml={data_yaml}", f"train.imgsz={imgsz}"]
    kwargs = to_train_args(compose_train_config(overrides, root), data_yaml, root / "outputs" / "runs" / "loader")
    return {"data": str(data_yaml), **{k: kwargs[k] for k in PIPELINE_KEYS if k in kwargs}}


class Timed:
    """A transform wrapper that adds its call's duration to `seconds[name]`."""

    def __init__(self, transform: Callable, name: str, seconds: dict[str, float]):
        self.transform, self.name, self.seconds = transform, name, seconds

    def __call__(self, labels):
        t = time.perf_counter()
        out = self.transform(labels)
        self.seconds[self.name] = self.seconds.get(self.name, 0.0) + time.perf_counter() - t
        return out

    def __getattr__(self, item):  # mosaic/close_mosaic code reads attributes of the wrapped transform
        return getattr(self.transform, item)


def instrument_transforms(dataset, seconds: dict[str, float]) -> list[str]:
    """Wrap each leaf transform of the dataset's pipeline in Timed; returns the stage names in call order."""
    names: list[str] = []

    def wrap(compose) -> None:
        for i, t in enumerate(compose.transforms):
            inner = getattr(t, "transforms", None)
            if isinstance(inner, list) and type(t).__name__ == "Compose":
                wrap(t)
                continue
            name = type(t).__name__
            if name == "RandomFlip":
                name += f"({getattr(t, 'direction', '?')})"
            while name in names:
                name += "'"
            names.append(name)
            compose.transforms[i] = Timed(t, name, seconds)

    wrap(dataset.transforms)
    return names


def stage_costs(dataset, samples: int, seed: int = 0) -> dict[str, Any]:
    """Median milliseconds per sample of each stage, in-process (one core), plus the collate per image."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    per_sample: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    names = instrument_transforms(dataset, seconds)
    items = []
    for i in range(samples):
        seconds.clear()
        t = time.perf_counter()
        item = dataset[i % len(dataset)]
        total = time.perf_counter() - t
        for name in names:
            per_sample.setdefault(name, []).append(seconds.get(name, 0.0) * 1e3)
        per_sample.setdefault("total", []).append(total * 1e3)
        items.append(item)
    t = time.perf_counter()
    dataset.collate_fn(items)
    collate_ms = (time.perf_counter() - t) * 1e3 / max(len(items), 1)
    stages = {name: median(v) for name, v in per_sample.items()}
    stages["other (load, labels)"] = max(0.0, stages["total"] - sum(stages[n] for n in names))
    stages["collate per image"] = collate_ms
    return {
        "ms": stages,
        "order": [*names, "other (load, labels)", "collate per image", "total"],
        "samples": samples,
        "images_per_s_one_core": 1e3 / (stages["total"] + collate_ms),
    }


def loader_throughput(dataset, batch: int, workers: int, batches: int) -> dict[str, Any]:
    """Images/s the training loader delivers with `workers` processes (first batch per worker not timed)."""
    loader = build_train_loader(dataset, batch, workers)
    actual = loader.num_workers
    # An epoch iterator stops after len(loader) batches; chaining epochs reuses the same persistent workers.
    it = itertools.chain.from_iterable(iter(loader) for _ in itertools.count())
    t0 = time.perf_counter()
    for _ in range(max(actual, 1)):  # worker start-up and the pipeline's fill
        next(it)
    warm_s = time.perf_counter() - t0
    images, t = 0, time.perf_counter()
    for _ in range(batches):
        images += len(next(it)["img"])
    elapsed = time.perf_counter() - t
    loader.close()  # Ultralytics' InfiniteDataLoader: release the persistent workers before the next measurement
    del it, loader
    return {
        "workers_asked": workers,
        "workers": actual,
        "batch": batch,
        "batches": batches,
        "images": images,
        "seconds": elapsed,
        "images_per_s": images / elapsed,
        "warmup_s": warm_s,
        "images_per_s_per_worker": images / elapsed / max(actual, 1),
        "load_average": load_average(),
    }


def measure_variant(variant: str, data_yaml: Path, args, root: Path) -> dict[str, Any]:
    kwargs = loader_variant_kwargs(variant, data_yaml, args.imgsz, root)
    t = time.perf_counter()
    dataset = build_train_dataset(kwargs, args.batch, gray=variant == "gray")
    build_s = time.perf_counter() - t
    loaders = [loader_throughput(dataset, args.batch, w, args.batches) for w in args.workers]
    # Stages last: the Timed wrappers would otherwise be pickled into the loader's workers.
    stages = stage_costs(dataset, args.samples)
    return {
        "variant": variant,
        "kwargs": kwargs,
        "dataset_build_s": build_s,
        "train_images": len(dataset),
        "stages": stages,
        "loaders": loaders,
    }


def loader_report_tables(results: list[dict[str, Any]]) -> str:
    order: list[str] = []
    for r in results:
        order += [s for s in r["stages"]["order"] if s not in order]
    stage_rows = [[s, *(r["stages"]["ms"].get(s) for r in results)] for s in order]
    stage_rows.append(["images/s on one core", *(r["stages"]["images_per_s_one_core"] for r in results)])
    names = [r["variant"] for r in results]
    out = ["ms per sample, in-process (median)", format_text_table(["stage", *names], stage_rows), ""]
    rows = []
    for r in results:
        for m in r["loaders"]:
            workers = m["workers"]
            if workers != m["workers_asked"]:  # Ultralytics caps workers at the cores and the batches
                workers = f"{workers} (of {m['workers_asked']})"
            rows.append(
                [
                    r["variant"],
                    workers,
                    m["batch"],
                    m["images"],
                    m["images_per_s"],
                    m["images_per_s_per_worker"],
                    m["warmup_s"],
                    m["load_average"],
                ]
            )
    out += [
        "loader throughput",
        format_text_table(
            ["variant", "workers", "batch", "images", "images/s", "per worker", "start-up s", "load"], rows
        ),
    ]
    return "\n".join(out)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m xray_exp.bench loader",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    p.add_argument(
        "--workers", nargs="+", type=int, default=None, help="worker counts to measure (default: 0 and 1..usable cores)"
    )
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=8, help="timed batches per worker count")
    p.add_argument("--samples", type=int, default=48, help="samples for the per-stage costs")
    p.add_argument("--images", type=int, default=256, help="train entries per epoch")
    p.add_argument("--unique", type=int, default=64, help="distinct synthetic radiographs behind them")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--out-dir", type=Path, default=None)
    return p.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    started = time.time()
    cores = usable_cpus()
    args.workers = args.workers if args.workers is not None else [0, *range(1, cores + 1)]
    root = output_root()

    configure_offline(root / "outputs" / ".ultralytics")
    apply_ultralytics_settings(root / "outputs" / ".ultralytics" / "runs")
    data_yaml = ensure_bench_dataset(
        root / "outputs" / "bench" / "loader-work", args.images, args.unique, args.imgsz, val=4
    )
    print(
        f"loader: {args.images} train entries ({args.unique} distinct) at {args.imgsz} px, batch {args.batch}, "
        f"workers {args.workers}, variants {args.variants}, {cores} usable cores",
        flush=True,
    )
    results = []
    for variant in args.variants:
        results.append(measure_variant(variant, data_yaml, args, root))
        best = max(results[-1]["loaders"], key=lambda m: m["images_per_s"])
        print(
            f"  {variant}: {results[-1]['stages']['images_per_s_one_core']:.1f} img/s on one core in-process, "
            f"best loader {best['images_per_s']:.1f} img/s with {best['workers']} workers",
            flush=True,
        )
    print()
    print(loader_report_tables(results))
    settings = {k: v for k, v in vars(args).items() if k != "out_dir"}
    path = write_result(NAME, envelope(NAME, argv, settings, {"variants": results}, started), args.out_dir)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
