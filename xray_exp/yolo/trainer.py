"""One-channel training input pipeline for grayscale radiographs: the same batches, a third of the CPU work.

    from xray_exp.yolo.trainer import XrayDetectionTrainer
    YOLO("yolo12n.yaml").train(trainer=XrayDetectionTrainer, data="data.yaml", ...)   # hardware.gray_loader

Ultralytics decodes every image as 3-channel BGR and runs mosaic, the affine warp, the HSV jitter and the
flips on three identical copies of a radiograph. When every training image file is single-channel (PNG/JPEG
grayscale, 8 or 16 bit; what `python -m xray_exp.prepare` and the synthetic set write), this trainer builds
the training dataset with one channel (`channels: 1` for the loader only: decode, RAM cache, mosaic, warp,
flips, collate, the copy to the training process), applies the HSV jitter as its exact grayscale
equivalent (a brightness lookup table, drawing the same random numbers), and copies the channel to three
on the training device, after Ultralytics' `preprocess_batch`. The model, the validation loader, ONNX export
and serving still see 3-channel input.

Exactness: OpenCV's resize, warpAffine, copyMakeBorder and flips work per channel, and for a gray BGR pixel
HSV->LUT->BGR reduces to the V lookup (S is 0, so hue is irrelevant; Ultralytics pins lut_sat[0] = 0), so
the batches equal the 3-channel pipeline's bit for bit (tests/yolo/test_gray_loader.py compares whole epochs).
`python -m xray_exp.bench loader` measures the saving per core.

Switch: `hardware.gray_loader` (true by default; false = Ultralytics' pipeline unchanged). The choice travels
in the environment variable XRAY_EXP_GRAY_LOADER so that processes Ultralytics re-launches for multi-GPU
DDP decide alike.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from xray_exp.offline import environment_variable
from xray_exp.yolo.epochs import log_epoch
from xray_exp.yolo.ultralytics_compat import HookedDetectionTrainer, keep_save_dir_on_ddp_launch

ENV = "XRAY_EXP_GRAY_LOADER"
# PIL modes of single-channel images (8-bit, 16-bit, 32-bit integer, 1-bit).
GRAY_MODES = {"L", "I;16", "I;16B", "I;16L", "I", "1"}


def gray_loader_env(on: bool):
    """Set XRAY_EXP_GRAY_LOADER for the duration (the trainer, and any DDP re-launch of it, reads it)."""
    return environment_variable(ENV, "1" if on else "0")


def enabled() -> bool:
    """Whether the one-channel pipeline may be used (XRAY_EXP_GRAY_LOADER, default on)."""
    return os.environ.get(ENV, "1").strip().lower() not in {"0", "false", "off", "no"}


def first_non_gray(files: Iterable[str | Path]) -> str | None:
    """The first file that is not a single-channel image (header only), or None when all are."""
    from PIL import Image

    for f in files:
        try:
            with Image.open(f) as im:
                if im.mode not in GRAY_MODES:
                    return f"{f} (mode {im.mode})"
        except Exception as exc:  # unreadable: Ultralytics reports it; here it just means "not known gray"
            return f"{f} ({type(exc).__name__})"
    return None


def image_files(img_path: str | Path | list) -> list[str]:
    """The image files a split names (folders searched recursively, list files read), as Ultralytics lists them."""
    from ultralytics.data.utils import IMG_FORMATS

    found: list[str] = []
    for p in img_path if isinstance(img_path, list) else [img_path]:
        p = Path(p)
        if p.is_dir():
            found += [str(f) for f in p.rglob("*.*")]
        elif p.is_file():
            parent = str(p.parent) + os.sep
            lines = p.read_text(encoding="utf-8-sig").strip().splitlines()
            found += [x.replace("./", parent, 1) if x.startswith("./") else x for x in lines]
    return sorted({f for f in found if f.rpartition(".")[-1].lower() in IMG_FORMATS})


class GrayHSV:
    """Ultralytics' RandomHSV for a one-channel image of a radiograph: only the value (brightness) lookup.

    Draws the same three uniforms as RandomHSV so the random stream, and every later augmentation, match.
    """

    def __init__(self, hgain: float = 0.5, sgain: float = 0.5, vgain: float = 0.5):
        self.hgain, self.sgain, self.vgain = hgain, sgain, vgain

    def __call__(self, labels: dict) -> dict:
        img = labels["img"]
        if self.hgain or self.sgain or self.vgain:
            r = np.random.uniform(-1, 1, 3) * [self.hgain, self.sgain, self.vgain]
            x = np.arange(0, 256, dtype=r.dtype)
            lut_val = np.clip(x * (r[2] + 1), 0, 255).astype(img.dtype)
            labels["img"] = cv2.LUT(img, lut_val).reshape(img.shape)  # cv2 drops a trailing axis of 1
        return labels


def to_gray_pipeline(transforms):
    """Rewrite an Ultralytics training Compose in place for one-channel images (RandomHSV -> GrayHSV; the
    rest works per channel as it is). Returns the same Compose."""
    from ultralytics.data.augment import Compose, RandomHSV

    for i, t in enumerate(transforms.transforms):
        if isinstance(t, RandomHSV):
            transforms.transforms[i] = GrayHSV(t.hgain, t.sgain, t.vgain)
        elif isinstance(t, Compose):
            to_gray_pipeline(t)
    return transforms


class XrayDetectionTrainer(HookedDetectionTrainer):
    """Ultralytics' DetectionTrainer with the one-channel training loader for grayscale image sets, the
    per-epoch MLflow log (xray_exp.yolo.epochs) installed by the class itself, and a run folder that a
    multi-GPU (DDP) launch does not wipe."""

    gray_loader: bool = False  # decided per training set in build_dataset

    def __init__(self, cfg=None, overrides=None, _callbacks=None):
        from ultralytics.utils import DEFAULT_CFG

        super().__init__(DEFAULT_CFG if cfg is None else cfg, overrides, _callbacks)
        self.in_final_eval = False  # True while final_eval runs (best.pt), which fires on_fit_epoch_end again
        if log_epoch not in self.callbacks["on_fit_epoch_end"]:  # a DDP child gets the parent's callbacks
            self.add_callback("on_fit_epoch_end", log_epoch)

    def train(self):
        """Ultralytics deletes `save_dir` before a DDP launch of a new training; here it is the run folder
        (config, logs, the MLflow journal), so it is kept (Ultralytics writes its files over it)."""
        with keep_save_dir_on_ddp_launch(self):
            return super().train()

    def final_eval(self):
        self.in_final_eval = True
        try:
            return super().final_eval()
        finally:
            self.in_final_eval = False

    def build_dataset(self, img_path, mode: str = "train", batch: int | None = None):
        if mode == "train":
            self.gray_loader = False
        if mode != "train" or not enabled() or self.data.get("channels", 3) != 3:
            return super().build_dataset(img_path, mode, batch)
        from ultralytics.utils import LOGGER

        if importlib.util.find_spec("albumentations") is not None:
            LOGGER.info(
                "gray loader: off, albumentations is installed (Ultralytics then adds colour transforms "
                "that act differently on one channel)"
            )
            return super().build_dataset(img_path, mode, batch)
        files = image_files(img_path)
        offender = first_non_gray(files) if files else "no images listed"
        if offender:
            LOGGER.info(f"gray loader: off, not every training image is single-channel: {offender}")
            return super().build_dataset(img_path, mode, batch)
        data, self.data = self.data, {**self.data, "channels": 1}
        try:
            dataset = super().build_dataset(img_path, mode, batch)
        finally:
            self.data = data
        to_gray_pipeline(dataset.transforms)
        self.gray_loader = True
        LOGGER.info(
            f"gray loader: {len(files)} single-channel training images, augmented on one channel "
            "(hardware.gray_loader=false turns this off)"
        )
        return dataset

    def preprocess_batch(self, batch: dict) -> dict:
        """Ultralytics' preprocessing (to the device, /255, multi-scale) on one channel, then 3 copies there."""
        batch = super().preprocess_batch(batch)
        if self.gray_loader and batch["img"].shape[1] == 1:
            batch["img"] = batch["img"].expand(-1, 3, -1, -1).contiguous()
        return batch

    def close_dataloader_mosaic(self):
        super().close_dataloader_mosaic()  # rebuilds the dataset's transforms
        if self.gray_loader:
            to_gray_pipeline(self.train_loader.dataset.transforms)
