"""Fuse detections of several models and test-time views into one set with ensemble-boxes (torch-free).

    from xray_exp.ensembles.fusion import FusionSettings, View, fuse, view_image, unview_boxes
    settings = FusionSettings(method="wbf", iou_thr=0.55, skip_box_thr=0.001, conf_type="avg")
    boxes, scores, labels = fuse([(b1, s1, l1), (b2, s2, l2)], weights=[2, 1], width=w, height=h,
                                 settings=settings)

Every model x view gives one list of boxes (xyxy, original pixels); they are normalised to [0, 1] for
ensemble-boxes and fused in ONE call (WBF, NMS, soft-NMS or NMW), then scaled back to pixels. A view is
an image transform: a zoom `scale` about the image centre (the canvas keeps its size: < 1 pads with grey
114, > 1 crops) and an optional horizontal flip; `unview_boxes` maps a view's boxes back to the image.
The service and the registered MLflow model import this module: numpy, OpenCV and ensemble-boxes only.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (N, 4) xyxy pixels, scores (N,), labels (N,)
METHODS = ("wbf", "nms", "soft_nms", "nmw")
CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")
PAD_VALUE = 114


@dataclass(frozen=True)
class FusionSettings:
    """ensemble-boxes' parameters. `skip_box_thr`: boxes below it are ignored (and what members predict at
    when serving); `conf_type`: WBF's score of a fused box; `sigma`: soft-NMS' Gaussian width."""

    method: str = "wbf"
    iou_thr: float = 0.55
    skip_box_thr: float = 0.001
    conf_type: str = "avg"
    sigma: float = 0.5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"fusion.method: {self.method!r} is not one of {', '.join(METHODS)}")
        if self.conf_type not in CONF_TYPES:
            raise ValueError(f"fusion.conf_type: {self.conf_type!r} is not one of {', '.join(CONF_TYPES)}")
        if not 0.0 < self.iou_thr <= 1.0:
            raise ValueError(f"fusion.iou_thr: {self.iou_thr} must lie in (0, 1]")
        if not 0.0 <= self.skip_box_thr < 1.0:
            raise ValueError(f"fusion.skip_box_thr: {self.skip_box_thr} must lie in [0, 1)")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class View:
    """One test-time view of an image: zoom `scale` about the centre, then an optional horizontal flip."""

    scale: float = 1.0
    flip: bool = False

    @property
    def name(self) -> str:
        zoom = "" if self.scale == 1.0 else f"x{self.scale:g}"
        return (zoom + ("-hflip" if self.flip else "")).strip("-") or "original"


def tta_views(tta: bool, scales: list[float] | tuple[float, ...] = ()) -> list[View]:
    """The views of an image: the original alone, or with `tta` also its mirror image; each extra scale
    adds a zoomed view (and its mirror with `tta`)."""
    views = [View(1.0, False)] + ([View(1.0, True)] if tta else [])
    for scale in scales:
        if float(scale) <= 0:
            raise ValueError(f"tta_scales: {scale} must be > 0")
        if float(scale) != 1.0:
            views += [View(float(scale), False)] + ([View(float(scale), True)] if tta else [])
    return views


def _zoom_matrix(scale: float, width: int, height: int) -> np.ndarray:
    return np.array([[scale, 0.0, (1.0 - scale) * width / 2.0], [0.0, scale, (1.0 - scale) * height / 2.0]])


def view_image(image: np.ndarray, view: View) -> np.ndarray:
    """The image as this view shows it (same height and width)."""
    out = image
    if view.scale != 1.0:
        h, w = image.shape[:2]
        out = cv2.warpAffine(
            image,
            _zoom_matrix(view.scale, w, h),
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(PAD_VALUE,) * 3,
        )
    if view.flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def hflip_xyxy(boxes: np.ndarray, width: float) -> np.ndarray:
    """Mirror xyxy boxes about the vertical centre line of an image `width` pixels wide."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)


def unview_boxes(boxes: np.ndarray, view: View, width: int, height: int) -> np.ndarray:
    """Boxes found on a view -> boxes on the original image (un-flipped, un-zoomed, clipped)."""
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if view.flip:
        out = hflip_xyxy(out, width)
    if view.scale != 1.0:
        m = _zoom_matrix(view.scale, width, height)
        out = (out - [m[0, 2], m[1, 2], m[0, 2], m[1, 2]]) / view.scale
        out = np.clip(out, 0.0, [width, height, width, height])
    return out


def empty() -> Detections:
    return np.zeros((0, 4), np.float64), np.zeros(0, np.float64), np.zeros(0, np.int64)


def fuse(
    sets: list[Detections], weights: list[float] | None, width: int, height: int, settings: FusionSettings
) -> Detections:
    """One fused detection set from several (one per model x view), in original pixels, best first."""
    import ensemble_boxes

    if weights is not None and len(weights) != len(sets):
        raise ValueError(f"{len(weights)} weights for {len(sets)} prediction sets")
    if sum(len(s[1]) for s in sets) == 0:
        return empty()
    scale = np.array([width, height, width, height], dtype=np.float64)
    boxes: list[NDArray[np.float64]] = [
        np.clip(np.asarray(s[0], dtype=np.float64).reshape(-1, 4) / scale, 0.0, 1.0) for s in sets
    ]
    scores: list[NDArray[np.float64]] = [np.asarray(s[1], dtype=np.float64).reshape(-1) for s in sets]
    labels: list[NDArray[np.int64]] = [np.asarray(s[2]).astype(np.int64).reshape(-1) for s in sets]
    args = {"weights": list(weights) if weights is not None else None, "iou_thr": settings.iou_thr}
    with warnings.catch_warnings():  # zero-area boxes are dropped with a warning each
        warnings.simplefilter("ignore")
        if settings.method == "wbf":
            out = ensemble_boxes.weighted_boxes_fusion(
                boxes, scores, labels, skip_box_thr=settings.skip_box_thr, conf_type=settings.conf_type, **args
            )
        elif settings.method == "nmw":
            out = ensemble_boxes.non_maximum_weighted(boxes, scores, labels, skip_box_thr=settings.skip_box_thr, **args)
        else:
            keep = [sc >= settings.skip_box_thr for sc in scores]
            boxes = [b[k] for b, k in zip(boxes, keep, strict=True)]
            scores = [sc[k] for sc, k in zip(scores, keep, strict=True)]
            labels = [lb[k] for lb, k in zip(labels, keep, strict=True)]
            if sum(len(sc) for sc in scores) == 0:
                return empty()
            if settings.method == "nms":
                out = ensemble_boxes.nms(boxes, scores, labels, **args)
            else:
                out = ensemble_boxes.soft_nms(
                    boxes, scores, labels, sigma=settings.sigma, thresh=settings.skip_box_thr, **args
                )
    b = np.asarray(out[0], np.float64).reshape(-1, 4) * scale
    s, c = np.asarray(out[1], np.float64), np.asarray(out[2]).astype(np.int64)
    order = np.argsort(-s, kind="stable")
    return b[order], s[order], c[order]


def top(dets: Detections, conf: float, max_det: int) -> Detections:
    """The fused detections at or above `conf`, at most `max_det`, best first."""
    keep = np.flatnonzero(dets[1] >= conf)[:max_det]
    return dets[0][keep], dets[1][keep], dets[2][keep]
