"""A random-init YOLO12n whose outputs vary with the image: weights for exercising a pipeline, not for findings.

    from xray_exp.yolo.demo import write_demo_weights
    pt, onnx = write_demo_weights("/tmp/demo-model", names, calibration_images, imgsz=160)
    python -m xray_exp.serve.demo_model /tmp/demo-model --imgsz 160   # the command that uses it

Weights are random (never downloaded); BatchNorm statistics are calibrated on the given grey images and
the class logits spread so that a few boxes per image pass conf 0.25. Ultralytics is imported inside the
function: call xray_exp.yolo.runtime.configure_offline first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xray_exp.yolo.export import export_onnx

ARCH = "yolo12n.yaml"


def write_demo_weights(
    out_dir: str | Path, names: Sequence[str], calibration: Sequence[np.ndarray], imgsz: int = 160, seed: int = 0
) -> tuple[Path, Path]:
    """Write <out_dir>/best.pt and <out_dir>/best.onnx (static input imgsz x imgsz); return both paths."""
    import cv2
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = DetectionModel(ARCH, nc=len(names), verbose=False)
    net.names = dict(enumerate(names))
    batch = np.stack([cv2.resize(img, (imgsz, imgsz), interpolation=cv2.INTER_AREA) for img in calibration])
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
    model = YOLO(ARCH)
    model.model = net  # type: ignore[assignment]  # Ultralytics' __init__ makes mypy infer str | None; it holds the net
    pt_path = out_dir / "best.pt"
    model.save(pt_path)
    return pt_path, export_onnx(pt_path, imgsz)


def _spread_class_logits(net, x, scale: float = 1.5, offset: float = -6.0) -> None:
    """Fold an affine map into the last class conv of each Detect level so that its logits on the
    calibration images have mean `offset` and std `scale`: a few boxes per image pass conf 0.25,
    instead of the saturated or flat scores a random head gives."""
    import torch

    convs = [branch[-1] for branch in net.model[-1].cv3]
    outputs: dict[int, torch.Tensor] = {}
    hooks = [conv.register_forward_hook(lambda m, i, o, k=k: outputs.__setitem__(k, o)) for k, conv in enumerate(convs)]
    with torch.no_grad():
        net(x)
        for hook in hooks:
            hook.remove()
        for k, conv in enumerate(convs):
            mean, std = outputs[k].mean(), outputs[k].std().clamp_min(1e-6)
            conv.weight.mul_(scale / std)
            conv.bias.sub_(mean).mul_(scale / std).add_(offset)
