"""Ultralytics as the benchmarks measure it: bare training (the baseline) and the training input pipeline.

    from xray_exp.yolo.bench import train_bare, build_train_dataset, build_train_loader
    train_bare("yolo12n.yaml", {"data": "/abs/data.yaml", "epochs": 1})     # YOLO(arch).train(**kwargs), nothing else
    dataset = build_train_dataset({"data": "/abs/data.yaml", "imgsz": 640}, batch=32, gray=True)
    loader = build_train_loader(dataset, batch=32, workers=2)
    python -m xray_exp.bench loader        # the commands that use them (also bench.bare_train)

Ultralytics is imported inside functions only (the caller sets its environment up first).
"""

from __future__ import annotations

from typing import Any


def train_bare(arch: str, kwargs: dict[str, Any]) -> None:
    """`YOLO(arch).train(**kwargs)`: plain Ultralytics, none of xray_exp's trainer, callbacks or tracking."""
    from ultralytics import YOLO

    YOLO(arch).train(**kwargs)


def build_train_dataset(kwargs: dict[str, Any], batch: int, gray: bool = False):
    """The training dataset as DetectionTrainer.build_dataset builds it (stride 32, as YOLO12's); `gray`:
    as XrayDetectionTrainer builds it for a single-channel image set."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.base import BaseDataset
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils import IterableSimpleNamespace

    from xray_exp.yolo.trainer import to_gray_pipeline  # lazy: heavy (PIL, cv2, torch, tqdm)

    cfg = get_cfg(overrides=kwargs)  # annotated SimpleNamespace; builds the IterableSimpleNamespace datasets take
    if not isinstance(cfg, IterableSimpleNamespace):
        raise TypeError(f"Ultralytics' get_cfg returned {type(cfg).__name__}, not an IterableSimpleNamespace")
    data = check_det_dataset(cfg.data, autodownload=False)
    dataset = build_yolo_dataset(
        cfg, data["train"], batch, {**data, "channels": 1} if gray else data, mode="train", rect=False, stride=32
    )
    if not isinstance(dataset, BaseDataset):  # annotated torch Dataset; a YOLODataset, with its transforms
        raise TypeError(f"Ultralytics' build_yolo_dataset returned {type(dataset).__name__}, not a BaseDataset")
    if gray:
        to_gray_pipeline(dataset.transforms)
    return dataset


def build_train_loader(dataset, batch: int, workers: int):
    """Ultralytics' training `InfiniteDataLoader` over `dataset` on CPU (shuffled, single process group);
    `.num_workers` is the worker count Ultralytics actually starts (capped at cores and batches)."""
    from ultralytics.data import build_dataloader

    return build_dataloader(dataset, batch=batch, workers=workers, shuffle=True, rank=-1, device="cpu")
