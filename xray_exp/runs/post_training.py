"""After training, on best.pt: metrics on `post.eval_splits` (xray_exp.evaluation), annotated samples, ONNX
export + parity. Every engine's run goes through `post_training` (xray_exp.runs.lifecycle.finish_run).

    metrics = post_training(cfg, info, best, run_dir)        # val/*, test/* (with CIs), onnx/*
    metrics = split_metrics(best, info, "test", cfg, run_dir / "report-test")   # test/map40, test/mAP50, ...
    python -m xray_exp.train post.eval_splits=[val,test] post.map40_method=voc2010 post.n_boot=1000
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from xray_exp.errors import ConfigError
from xray_exp.evaluation import MetricSettings, evaluate_split
from xray_exp.evaluation.definitions import definitions
from xray_exp.evaluation.pipeline import PREDICT_BATCH, PREDICT_CONF, PREDICT_MAX_DET, PREDICT_NMS_IOU
from xray_exp.runs.classify_run import classify_post_training, task_of
from xray_exp.yolo.export import export_onnx, onnx_parity
from xray_exp.yolo.predict import save_samples

log = logging.getLogger("xray_exp.runs.post_training")


def metric_settings(cfg: DictConfig):
    """The scoring settings of post-training (`post.*`; decision threshold `post.conf`)."""
    from dataclasses import replace

    try:
        return replace(MetricSettings.from_config(cfg.post), decision_conf=float(cfg.post.conf))
    except ValueError as exc:
        raise ConfigError(f"post.{exc}") from exc


def split_metrics(best: Path, info, split: str, cfg: DictConfig, out_dir: Path) -> dict[str, float]:
    """Every metric of one split from xray_exp.evaluation (one prediction pass) + its report.

    A dataset without a test split reports val as test (with a warning)."""
    if split == "test" and not info.has_test:
        log.warning("dataset has no test split: reporting val as test")
        split_name, prefix = "val", "test"
    else:
        split_name, prefix = split, split
    if split_name not in info.splits:
        raise ConfigError(f"post.eval_splits: the dataset has no {split_name!r} split")
    return evaluate_split(
        best,
        info.data_yaml,
        split_name,
        imgsz=cfg.train.imgsz,
        conf=PREDICT_CONF,
        iou=PREDICT_NMS_IOU,
        tta=False,
        out_dir=out_dir,
        device=cfg.hardware.device,
        batch=PREDICT_BATCH,
        max_det=PREDICT_MAX_DET,
        metrics=metric_settings(cfg),
        prefix=prefix,
    )


def evaluation_settings(cfg: DictConfig) -> dict:
    """What summary.json says about how its val/* and test/* metrics were computed."""
    from dataclasses import asdict

    settings = metric_settings(cfg)
    return {
        "splits": list(cfg.post.eval_splits),
        "imgsz": int(cfg.train.imgsz),
        "conf": PREDICT_CONF,
        "nms_iou": PREDICT_NMS_IOU,
        "max_det": PREDICT_MAX_DET,
        "settings": asdict(settings),
        "definitions": definitions(settings),
    }


def post_training(cfg: DictConfig, info, best: Path, run_dir: Path) -> dict[str, float]:
    """Metrics on `post.eval_splits`, annotated samples, ONNX export + parity (each switchable in `post`)."""
    if task_of(cfg) == "classify":
        return classify_post_training(cfg, info, best, run_dir)

    metrics: dict[str, float] = {}
    post, hw = cfg.post, cfg.hardware
    for split in post.eval_splits:
        metrics.update(split_metrics(best, info, split, cfg, run_dir / f"report-{split}"))
    sample_images = info.splits["val"][: post.samples]
    if post.samples:
        save_samples(best, sample_images, run_dir / "samples", cfg.train.imgsz, post.conf, hw.device)
    if post.onnx:
        onnx_path = export_onnx(best, cfg.train.imgsz)
        parity = onnx_parity(
            best,
            onnx_path,
            sample_images or info.splits["val"][:2],
            cfg.train.imgsz,
            post.parity_conf,
            post.parity_iou,
            run_dir / "onnx_parity.json",
        )
        metrics["onnx/max_abs_diff_box_px"] = parity["max_abs_diff_box_px"]
        metrics["onnx/max_abs_diff_score"] = parity["max_abs_diff_score"]
        metrics["onnx/detection_agreement"] = parity["detection_agreement"]
        if not parity["passed"]:
            log.warning("ONNX parity outside tolerance: %s", parity)
    return metrics
