"""Evaluate a detector on one split: predict once, score with xray_exp.metrics, add bootstrap CIs, report.

    from xray_exp.evaluation import MetricSettings, evaluate_split
    metrics = evaluate_split("best.pt", "data.yaml", "test", imgsz=320, out_dir="outputs/eval/test",
                             metrics=MetricSettings(map40_method="voc2010", n_boot=1000))
    metrics["test/map40"], metrics["test/map40_ci_low"], metrics["test/froc_mean"], metrics["test/ap40/nodule"]

This is the one evaluator of the project: `python -m xray_exp.evaluate`, post-training (`val/*`, `test/*`)
and `python -m xray_exp.compare` all score through `score_predictions`. Metric names: see
xray_exp.metrics.summary (`{split}/map40`, `{split}/mAP50`, `{split}/mAP50-95`, `{split}/froc_mean`,
`{split}/froc_fp0.125` ... `{split}/froc_fp8`, `{split}/auroc`, `{split}/sensitivity`, `{split}/specificity`,
`{split}/ap40/<class>`, ... and `<name>_ci_low` / `<name>_ci_high` for the headline metrics; definitions:
docs/metrics.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xray_exp.evaluation.dataset import patient_groups
from xray_exp.evaluation.definitions import definitions
from xray_exp.evaluation.predict import SplitPredictions, predict_split
from xray_exp.evaluation.report import write_evaluation_report
from xray_exp.metrics.bootstrap import bootstrap_ci
from xray_exp.metrics.summary import EvaluationResult, evaluate_records, flat_metrics

MAP40_METHODS = ("voc2010", "coco101")
FROC_HITS = ("iou", "center")


# Prediction settings of post-training; `python -m xray_exp.evaluate` defaults to the same, so both give
# the same numbers on the same weights and split.
PREDICT_CONF, PREDICT_NMS_IOU, PREDICT_MAX_DET, PREDICT_BATCH = 0.001, 0.7, 300, 16


@dataclass(frozen=True)
class MetricSettings:
    """How predictions are scored (the `post` and `evaluate` configs carry the same keys).

    match_iou: IoU of a hit (FROC, precision/recall, confusion); decision_conf: the reporting threshold;
    map40_method: `voc2010` (VinBigData: PASCAL VOC 2010 all-point AP, IoU > 0.4, devkit matching) or
    `coco101` (COCO 101-point AP, COCO matching, IoU >= 0.4); froc_hit: `iou` or `center` (detection centre
    inside the lesion box); no_finding_class: score the competition's "No finding" class (VinDr-CXR: 14) as
    the public leaderboard did (None: off); n_boot: bootstrap resamples for the CIs (0: none);
    ci_seed/ci_level: their seed and level; progress: tqdm bars on prediction and bootstrap.
    """

    match_iou: float = 0.4
    decision_conf: float = 0.25
    map40_method: str = "voc2010"
    froc_hit: str = "iou"
    no_finding_class: int | None = None
    gallery_size: int = 12
    n_boot: int = 1000
    ci_seed: int = 0
    ci_level: float = 0.95
    progress: bool = True

    def __post_init__(self) -> None:
        if self.map40_method not in MAP40_METHODS:
            raise ValueError(f"map40_method: {self.map40_method!r} is not one of {', '.join(MAP40_METHODS)}")
        if self.froc_hit not in FROC_HITS:
            raise ValueError(f"froc_hit: {self.froc_hit!r} is not one of {', '.join(FROC_HITS)}")
        if self.n_boot < 0:
            raise ValueError(f"n_boot: {self.n_boot} must be >= 0 (0: no confidence intervals)")

    @classmethod
    def from_config(cls, node: Any) -> MetricSettings:
        """From a config section holding these keys (extra keys are ignored)."""
        return cls(**{k: node[k] for k in cls.__dataclass_fields__ if k in node})


def score_predictions(
    out: SplitPredictions, settings: MetricSettings, groups: list[str] | None = None
) -> EvaluationResult:
    """Every metric of one prediction set (the cached matches the bootstrap resamples)."""
    return evaluate_records(
        out.preds,
        out.gts,
        out.names,
        match_iou=settings.match_iou,
        decision_conf=settings.decision_conf,
        map40_method=settings.map40_method,
        gallery_size=settings.gallery_size,
        froc_hit=settings.froc_hit,
        no_finding_class=settings.no_finding_class,
        groups=groups,
    )


def confidence_intervals(result: EvaluationResult, settings: MetricSettings) -> dict[str, tuple[float, float]] | None:
    if not settings.n_boot:
        return None

    return bootstrap_ci(
        result, n_boot=settings.n_boot, seed=settings.ci_seed, level=settings.ci_level, progress=settings.progress
    )


def split_groups(data_yaml: str | Path, out: SplitPredictions) -> list[str] | None:
    return patient_groups(data_yaml, [str(g["image_id"]) for g in out.gts])


def evaluate_split(
    weights,
    data_yaml: str | Path,
    split: str = "test",
    imgsz: int = 640,
    conf: float = 0.001,
    iou: float = 0.7,
    tta: bool = False,
    out_dir: str | Path | None = None,
    device: str | None = None,
    *,
    batch: int = 16,
    max_det: int = 300,
    wbf_iou: float = 0.55,
    metrics: MetricSettings | None = None,
    prefix: str | None = None,
    settings_dir: str | Path | None = None,
    report_settings: dict | None = None,
    transform=None,
) -> dict[str, float]:
    """Flat metrics `{prefix}/<name>` (prefix defaults to the split name) with `_ci_low/_ci_high` for the
    headline metrics; the report goes to out_dir (None: no files).

    weights: .pt/.onnx path or a loaded Ultralytics model; conf/iou: the prediction confidence (keep it low
    for AP) and NMS IoU; tta: add horizontal-flip predictions fused by WBF (`wbf_iou`). `transform`: applied to
    the prediction records before scoring (a classifier's gate, xray_exp.evaluation.gated).
    """
    settings = metrics or MetricSettings()
    out = predict_split(
        weights,
        data_yaml,
        split,
        imgsz=imgsz,
        conf=conf,
        iou=iou,
        tta=tta,
        device=device,
        batch=batch,
        max_det=max_det,
        wbf_iou=wbf_iou,
        settings_dir=settings_dir,
        progress=settings.progress,
    )
    if transform is not None:
        out.preds = transform(out.preds)
    groups = split_groups(data_yaml, out)
    result = score_predictions(out, settings, groups)
    flat = flat_metrics(result, prefix=prefix or split, ci=confidence_intervals(result, settings))
    if out_dir is not None:
        shown = {
            "weights": weights if isinstance(weights, str | Path) else type(weights).__name__,
            "data": data_yaml,
            "split": split,
            "imgsz": imgsz,
            "conf": conf,
            "nms iou": iou,
            "tta": tta,
            "device": device,
            **{k.replace("_", " "): v for k, v in asdict(settings).items()},
            "bootstrap unit": "patient" if groups else "image",
            **(report_settings or {}),
        }
        write_evaluation_report(
            result, out.preds, out.gts, flat, out_dir, settings=shown, definitions=definitions(settings)
        )
    return flat
