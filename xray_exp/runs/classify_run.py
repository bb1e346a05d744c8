"""`task=classify` inside the one run lifecycle: what differs from a detector's run, and nothing else.

    python -m xray_exp.train task=classify model=yolo12n dataset=synthetic debug=smoke

- data: the classify folder derived from the validated detection dataset (xray_exp.data.classify);
- model: yolo12<scale>-cls.yaml (xray_exp.yolo.classify), registered as `<model>-cls`;
- post-training: P(abnormal) on `post.eval_splits` scored by xray_exp.evaluation.classifier (val/auroc with its
  interval, sensitivity/specificity at task.threshold, Brier score, reliability curve; report-<split>/), ONNX
  export + parity of the torch-free path (onnx_parity.json).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from xray_exp.data.classify import class_counts, classify_dataset
from xray_exp.errors import ConfigError
from xray_exp.evaluation.classifier import evaluate_classifier

log = logging.getLogger("xray_exp.train")

CLS_SUFFIX = "-cls"
MULTILABEL_WHY = (
    "task.labels=multilabel is not offered: Ultralytics' classify head, loss and validator are "
    "single-label softmax over folder classes (one class per image), so one output per finding "
    "would need a new head, loss and validator outside Ultralytics. Fix: task.labels=binary "
    "(normal / abnormal)"
)


def task_of(cfg: DictConfig) -> str:
    """`detect` or `classify` (a run started before `task` existed is a detector's)."""
    return str(OmegaConf.select(cfg, "task.name", default="detect"))


def check_task(cfg: DictConfig) -> None:
    """Before any work: the classify options are ones we can train."""
    if task_of(cfg) != "classify":
        return
    if str(cfg.task.labels) != "binary":
        raise ConfigError(MULTILABEL_WHY)
    if not 0.0 < float(cfg.task.threshold) < 1.0:
        raise ConfigError(f"task.threshold={cfg.task.threshold}: give a probability strictly between 0 and 1")


def training_data(cfg: DictConfig, info) -> Path:
    """What Ultralytics trains on: the data.yaml (detect) or the derived classify folder (classify)."""
    if task_of(cfg) != "classify":
        return info.data_yaml

    root = classify_dataset(info, Path(cfg.paths.cache_dir) / "classify")
    log.info("classify data %s: %s", root, class_counts(root))
    return root


def model_arch(cfg: DictConfig) -> str:
    if task_of(cfg) != "classify":
        return cfg.model.arch
    from xray_exp.yolo.classify import classify_arch  # lazy: heavy (PIL, cv2, torch, tqdm)

    return classify_arch(cfg.model.arch)


def task_registered_name(cfg: DictConfig, name: str) -> str:
    return name + CLS_SUFFIX if task_of(cfg) == "classify" else name


def classify_post_training(cfg: DictConfig, info, best: Path, run_dir: Path) -> dict[str, float]:
    """Image-level metrics on `post.eval_splits` (report-<split>/), ONNX export + parity (onnx/*)."""
    from xray_exp.yolo.classify import classifier_parity, export_classifier  # lazy: heavy (PIL, cv2, torch, tqdm)

    metrics: dict[str, float] = {}
    post = cfg.post
    for split in post.eval_splits:
        name, prefix = split, split
        if split == "test" and not info.has_test:
            log.warning("dataset has no test split: reporting val as test")
            name = "val"
        if name not in info.splits:
            raise ConfigError(f"post.eval_splits: the dataset has no {name!r} split")
        metrics.update(
            evaluate_classifier(
                best,
                info.data_yaml,
                name,
                imgsz=int(cfg.train.imgsz),
                threshold=float(cfg.task.threshold),
                out_dir=run_dir / f"report-{split}",
                device=cfg.hardware.device,
                n_boot=int(post.n_boot),
                seed=int(post.ci_seed),
                prefix=prefix,
            )
        )
    if post.onnx:
        onnx = export_classifier(best, int(cfg.train.imgsz))
        images = info.splits["val"][: max(int(post.samples), 2)]
        parity = classifier_parity(best, onnx, images, int(cfg.train.imgsz), run_dir / "onnx_parity.json")
        metrics["onnx/max_abs_diff_prob_export"] = parity["max_abs_diff_prob_export"]
        metrics["onnx/max_abs_diff_prob_pipeline"] = parity["max_abs_diff_prob_pipeline"]
        if not parity["passed"]:
            log.warning("ONNX parity outside tolerance: %s", parity)
    return metrics
