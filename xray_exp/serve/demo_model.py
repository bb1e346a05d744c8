"""A small random-init YOLO12n (.pt + ONNX) for trying and testing the service without training.

    python -m xray_exp.serve.demo_model /tmp/demo-model --imgsz 160   # prints the .onnx path
    XRAY_SERVE_MODEL=/tmp/demo-model/best.onnx python -m xray_exp.serve

Its weights are random (never downloaded); BatchNorm statistics are calibrated on a few synthetic
radiographs so that outputs vary with the image. Its "findings" mean nothing: it exists to exercise the
pipeline (pre/post-processing parity, the API, the load test). Imports ultralytics: not for the service.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

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
    from xray_exp.data.synthetic import generate_image

    rng = np.random.default_rng(seed)
    return [generate_image(rng, size, 0.25)[0] for _ in range(count)]


def build_demo_model(
    out_dir: str | Path,
    imgsz: int = 160,
    names: Sequence[str] = NIH_CLASSES,
    calibration: Sequence[np.ndarray] | None = None,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write <out_dir>/best.pt and <out_dir>/best.onnx (static input imgsz x imgsz); return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "ultralytics" not in sys.modules:
        from xray_exp.yolo.runtime import configure_offline

        configure_offline(out_dir / ".ultralytics")
    import cv2
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    net = DetectionModel("yolo12n.yaml", nc=len(names), verbose=False)
    net.names = dict(enumerate(names))
    images = list(calibration) if calibration is not None else synthetic_images(16, seed=seed)
    batch = np.stack([cv2.resize(img, (imgsz, imgsz), interpolation=cv2.INTER_AREA) for img in images])
    x = torch.from_numpy(batch).float().div(255).unsqueeze(1).repeat(1, 3, 1, 1)
    for module in net.modules():  # cumulative BatchNorm statistics over the calibration passes
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(x)
    net.eval()
    _spread_class_logits(net, x)
    model = YOLO("yolo12n.yaml")
    model.model = net
    pt_path = out_dir / "best.pt"
    model.save(pt_path)
    onnx_path = Path(YOLO(pt_path).export(format="onnx", imgsz=imgsz, simplify=True, verbose=False))
    return pt_path, onnx_path


def _spread_class_logits(net, x, scale: float = 1.5, offset: float = -6.0) -> None:
    """Fold an affine map into the last class conv of each Detect level so that its logits on the
    calibration images have mean `offset` and std `scale`: a few boxes per image pass conf 0.25,
    instead of the saturated or flat scores a random head gives."""
    import torch

    convs = [branch[-1] for branch in net.model[-1].cv3]
    outputs: dict[int, torch.Tensor] = {}
    hooks = [
        conv.register_forward_hook(lambda m, i, o, k=k: outputs.__setitem__(k, o))
        for k, conv in enumerate(convs)
    ]
    with torch.no_grad():
        net(x)
        for hook in hooks:
            hook.remove()
        for k, conv in enumerate(convs):
            mean, std = outputs[k].mean(), outputs[k].std().clamp_min(1e-6)
            conv.weight.mul_(scale / std)
            conv.bias.sub_(mean).mul_(scale / std).add_(offset)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out_dir")
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_demo_model(args.out_dir, imgsz=args.imgsz, seed=args.seed)[1])


if __name__ == "__main__":
    main()
