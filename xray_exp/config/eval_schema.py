"""Structured schemas of `python -m xray_exp.evaluate` and `python -m xray_exp.compare`.

    python -m xray_exp.evaluate model=best.pt n_bot=0
    # -> ERROR: unknown key 'n_bot' ... (did you mean n_boot?)   exit 2, before anything runs

xray_exp/conf/evaluate.yaml and compare.yaml compose onto these (`evaluate_schema`, `compare_schema` in their
defaults lists, registered by xray_exp.config.store.register_configs): a typo in a key, in the command line or in a
YAML file of the user's conf/, or a wrong type fails at compose time and names the key. The scoring keys mean
what `post.*` means in training (xray_exp/config/schema.py: PostConfig); the comments of the YAML files say more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from xray_exp.config.schema import DatasetConfig, GateConfig, PathsConfig, TrackingConfig


@dataclass
class ScoringConfig:
    """What evaluate and compare share: the data, the prediction settings and how predictions are scored."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    split: str = "test"
    imgsz: int | None = None  # None: the size the checkpoint was trained at
    conf: float = 0.001  # prediction confidence: low, AP and FROC need the whole ranking
    iou: float = 0.7  # NMS IoU
    device: str | None = None  # cpu | 0 | 1 ... (None: Ultralytics picks)
    batch: int = 16
    max_det: int = 300
    match_iou: float = 0.4
    decision_conf: float = 0.25
    map40_method: str = "voc2010"  # voc2010 | coco101
    froc_hit: str = "iou"  # iou | center
    no_finding_class: int | None = None
    n_boot: int = 1000
    ci_seed: int = 0
    progress: bool = True
    offline: bool = True
    out_dir: str = MISSING
    gate: GateConfig = field(default_factory=GateConfig)  # gate=<classifier> (xray_exp.gating)


@dataclass
class EvaluateConfig(ScoringConfig):
    """`python -m xray_exp.evaluate`: one model (`model=` is stored as `weights`) on one split."""

    weights: str = MISSING  # a .pt / .onnx file or models:/<name>@<alias>
    classifier_threshold: float = 0.5  # model=<classifier>: P(abnormal) >= this -> abnormal
    tta: bool = False
    tta_wbf_iou: float = 0.55
    gallery_size: int = 12
    objective: str = MISSING  # the metric main() returns (sweepers), e.g. test/map40
    evaluation_experiment: str = "YOLO12-Evaluation"


@dataclass
class CompareConfig(ScoringConfig):
    """`python -m xray_exp.compare A B`: two models on the same images, paired differences B - A."""

    a: str = MISSING  # a run folder, a weights file or a models:/ URI
    b: str = MISSING
    ci_level: float = 0.95
    comparison_experiment: str = "YOLO12-Comparison"
