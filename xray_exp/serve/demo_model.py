"""A small random-init YOLO12n (.pt + ONNX) for trying and testing the service without training.

    python -m xray_exp.serve.demo_model /tmp/demo-model --imgsz 160   # prints the .onnx path
    XRAY_SERVE_MODEL=/tmp/demo-model/best.onnx python -m xray_exp.serve

Its weights are random (never downloaded); BatchNorm statistics are calibrated on a few synthetic
radiographs so that outputs vary with the image. Its "findings" mean nothing: it exists to exercise the
pipeline (pre/post-processing parity, the API, the load test). The weights are built by
xray_exp.yolo.demo (imports ultralytics): not for the service.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xray_exp.data.synthetic import generate_image
from xray_exp.yolo.demo import write_demo_weights

NIH_CLASSES = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltrate",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
)


def synthetic_images(count: int, size: int = 320, seed: int = 0) -> list[np.ndarray]:
    """Grey synthetic chest films from xray_exp.data.synthetic."""
    rng = np.random.default_rng(seed)
    return [generate_image(rng, size, 0.25)[0] for _ in range(count)]


def build_demo_model(
    out_dir: str | Path,
    imgsz: int = 160,
    names: Sequence[str] = NIH_CLASSES,
    calibration: Sequence[np.ndarray] | None = None,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write <out_dir>/best.pt and <out_dir>/best.onnx (static input imgsz x imgsz); return both paths.
    Without `calibration` images, BatchNorm is calibrated on 16 synthetic films."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "ultralytics" not in sys.modules:
        from xray_exp.yolo.runtime import configure_offline  # lazy: only on this path

        configure_offline(out_dir / ".ultralytics")

    images = list(calibration) if calibration is not None else synthetic_images(16, seed=seed)
    return write_demo_weights(out_dir, names, images, imgsz=imgsz, seed=seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_demo_model(args.out_dir, imgsz=args.imgsz, seed=args.seed)[1])


if __name__ == "__main__":
    main()
