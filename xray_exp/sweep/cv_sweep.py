"""A cross-validation as a sweep (`sweep=cv`, xray_exp/conf/sweep/cv.yaml): the plan before the first fold, one
job per fold, OOF scoring after the last.

    python -m xray_exp.train --multirun sweep=cv cv.folds=5 model=yolo12s dataset=nih_cxr14
    python -m xray_exp.train --multirun sweep=cv cv.folds=3 debug=smoke     # a 3-fold smoke CV in minutes
    python -m xray_exp.train --multirun sweep=cv cv.folds=5 task=classify   # classifiers (OOF P(abnormal))

start_cv (the sweep callback, before any job): bad input fails here (cv.folds < 2, more folds than patients,
no train/val pool) with nothing written; the plan (folds.csv, plan/fold<f>.yaml) and cv.json are written
into outputs/cv/<cv.name>/, a re-run checks that the plan is the same; the folder of a fold that failed or
was interrupted is moved to attempts/ (its MLflow child run stays, FAILED).
fold_job (each job): a fold whose fold<f>/summary.json says FINISHED is not retrained; otherwise the job trains
through the run lifecycle on plan/fold<f>.yaml (a FAILED child run when it fails) and updates cv.json.
finish_cv_sweep (the sweep callback, after the last job): xray_exp.cv.finish.finish_cv, the parent run ended;
nothing is registered (the ensemble of the folds registers: python -m xray_exp.ensemble cv=outputs/cv/<name>).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from xray_exp.cv.finish import finish_cv
from xray_exp.cv.plan import FOLDS_CSV, fold_data_yaml, fold_table, make_fold_plan, read_folds_csv, write_fold_plan
from xray_exp.cv.record import CV_FILE, fold_run_dir, fold_state, new_cv_record, refresh_cv_record
from xray_exp.data.synthetic import resolve_data_yaml
from xray_exp.errors import ConfigError, XrayExpError
from xray_exp.evaluation.pipeline import PREDICT_BATCH, PREDICT_CONF, PREDICT_MAX_DET, PREDICT_NMS_IOU
from xray_exp.runs.classify_run import task_of
from xray_exp.runs.lifecycle import is_fresh_run_dir, ultralytics_dir
from xray_exp.runs.post_training import metric_settings
from xray_exp.runs.single_run import train_run
from xray_exp.sweep.job import record_failure

log = logging.getLogger("xray_exp.sweep")

NOT_REGISTERED = "cross-validation fold: not registered (the ensemble of the folds registers: xray_exp.ensemble)"
NOT_REGISTERED_CLASSIFY = (
    "cross-validation fold: not registered (a fold classifier is a gate as it is: "
    "gate=<cv folder>/fold<f>/weights/best.onnx; python -m xray_exp.train task=classify registers one)"
)


def not_registered_note(config: DictConfig) -> str:
    return NOT_REGISTERED_CLASSIFY if task_of(config) == "classify" else NOT_REGISTERED


def cv_enabled(config: DictConfig) -> bool:
    return bool(OmegaConf.select(config, "cv.enabled", default=False))


def cv_settings(config: DictConfig) -> dict[str, Any]:
    """What finish_cv needs to score the folds again later: prediction and metric settings, where Ultralytics
    keeps its settings."""
    from dataclasses import asdict

    return {
        "task": task_of(config),  # classify: the folds are classifiers, OOF = P(abnormal) per image
        "threshold": float(OmegaConf.select(config, "task.threshold", default=0.5)),
        "predict": {
            "conf": PREDICT_CONF,
            "iou": PREDICT_NMS_IOU,
            "max_det": PREDICT_MAX_DET,
            "batch": PREDICT_BATCH,
            "device": config.hardware.device,
        },
        "metrics": asdict(metric_settings(config)),
        "ultralytics_dir": str(ultralytics_dir(config)),
        "allow_missing": bool(config.cv.allow_missing),
    }


def _same_plan(cv_dir: Path, plan) -> str | None:
    """None when cv_dir holds no plan or the same one; else what differs."""
    if (cv_dir / CV_FILE).is_file():
        kept = json.loads((cv_dir / CV_FILE).read_text())
        if kept.get("data_yaml") != str(plan.data_yaml):
            return f"it was planned on {kept.get('data_yaml')}, this run uses {plan.data_yaml}"
    if not (cv_dir / FOLDS_CSV).is_file():
        return None
    kept_folds = {row["image"]: row["fold"] for row in read_folds_csv(cv_dir / FOLDS_CSV)}
    if kept_folds != plan.fold_of:
        return "its folds.csv assigns other images or other folds (the dataset changed?)"
    return None


TRAINING_KEYS = ("model", "train", "augmentation", "task")  # what a fold's training depends on (beside the plan)
NAMING_KEYS = ("task.suffix",)  # part of the folder's name, not of the training


def _flat(node: Any, prefix: str) -> dict[str, Any]:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}.{key}").items()}
    return {prefix: node}


def _changed_settings(cv_dir: Path, config: DictConfig) -> list[str]:
    """`key: kept -> now` for every training setting a finished fold of cv_dir was trained with otherwise."""
    import yaml

    now = {}
    for key in TRAINING_KEYS:
        now.update(_flat(OmegaConf.to_container(config[key], resolve=True, enum_to_str=True), key))
    changed: dict[str, str] = {}
    for fold in range(int(config.cv.folds)):
        run_dir = fold_run_dir(cv_dir, fold)
        saved = run_dir / "config.resolved.yaml"
        if fold_state(run_dir)[0] != "FINISHED" or not saved.is_file():
            continue
        kept_cfg = yaml.safe_load(saved.read_text()) or {}
        kept = {}
        for key in TRAINING_KEYS:
            kept.update(_flat(kept_cfg.get(key, {}), key))
        if "task" not in kept_cfg:  # a fold trained before `task` existed: a detector with today's defaults
            kept.update({k: v for k, v in now.items() if k.startswith("task.")}, **{"task.name": "detect"})
        for key in sorted(set(kept) | set(now)):
            if key in NAMING_KEYS:
                continue
            if kept.get(key) != now.get(key):
                changed.setdefault(key, f"{key}: {kept.get(key)} -> {now.get(key)}")
    return list(changed.values())


def start_cv(config: DictConfig) -> Path:
    """Check and write the plan and cv.json; exits 2 on bad input, before anything is written."""
    cv, cv_dir = config.cv, Path(str(config.hydra.sweep.dir)).resolve()
    try:
        if int(cv.folds) < 2:
            raise ConfigError(f"cv.folds={cv.folds}: a cross-validation needs at least 2 folds (e.g. cv.folds=5)")
        plan = make_fold_plan(resolve_data_yaml(config.dataset, config.paths.cache_dir), int(cv.folds), int(cv.seed))
        differs = _same_plan(cv_dir, plan)
        changed = [] if differs else _changed_settings(cv_dir, config)
        if changed:
            differs = f"its finished folds were trained with other settings ({'; '.join(changed[:5])})"
        if differs:
            raise ConfigError(
                f"{cv_dir} holds another cross-validation: {differs}. Fix: cv.name=<a new name>, "
                "or remove that folder to start it again."
            )
    except XrayExpError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from exc
    write_fold_plan(plan, cv_dir)
    for fold in range(plan.folds):
        run_dir = fold_run_dir(cv_dir, fold)
        if run_dir.exists() and fold_state(run_dir)[0] != "FINISHED":
            attempt = 1
            while (cv_dir / "attempts" / f"fold{fold}-{attempt}").exists():
                attempt += 1
            (cv_dir / "attempts").mkdir(exist_ok=True)
            shutil.move(str(run_dir), cv_dir / "attempts" / f"fold{fold}-{attempt}")
            log.info("fold %d: the earlier unfinished attempt moved to attempts/fold%d-%d", fold, fold, attempt)
    new_cv_record(
        cv_dir,
        name=str(cv.name),
        data_yaml=plan.data_yaml,
        folds=plan.folds,
        seed=plan.seed,
        names=plan.names,
        imgsz=int(config.train.imgsz),
        model=str(config.model.name) + str(OmegaConf.select(config, "task.suffix", default="")),
        dataset=str(config.dataset.name),
        patients_known=plan.patients_known,
        folds_csv=str(cv_dir / "folds.csv"),
        **cv_settings(config),
    )
    print(fold_table(plan), flush=True)
    return cv_dir


def fold_job(cfg: DictConfig, run_dir: str | Path, overrides: list[str], parent) -> float:
    """One fold of a CV (a job of `sweep=cv`): skipped when finished before, else trained on its plan/fold<f>.yaml.
    Returns the objective (NaN when the fold failed: recorded, and the other folds go on)."""
    run_dir = Path(run_dir).resolve()
    cv_dir, fold = run_dir.parent, int(cfg.cv.fold)
    status, summary = fold_state(run_dir)
    if status == "FINISHED":
        print(f"fold {fold}: finished before ({run_dir / 'summary.json'}): not retrained", flush=True)
        value = ((summary or {}).get("objective") or {}).get("value")  # FINISHED comes with its summary
        return float("nan") if value is None else float(value)
    if parent is not None:
        parent = dataclasses.replace(
            parent,
            registration_note=not_registered_note(cfg),
            tags={**parent.tags, "cv.name": str(cfg.cv.name), "cv.fold": str(fold)},
        )
    try:
        data_yaml = fold_data_yaml(cv_dir, fold)
        if not data_yaml.is_file():
            raise ConfigError(
                f"cv.fold={fold}: {data_yaml} not found. A fold runs inside `python -m xray_exp.train "
                "--multirun sweep=cv` (the sweep writes the plan first)."
            )
        with open_dict(cfg):
            cfg.dataset.data_yaml = str(data_yaml)
        return train_run(cfg, run_dir, overrides, parent, keep_failed_dir=True)
    except Exception as exc:  # recorded (FAILED child run, summary.json), the other folds go on
        return record_failure(cfg, run_dir, overrides, exc)
    finally:
        refresh_cv_record(cv_dir)


def refuse_single_fold(cfg: DictConfig, run_dir: str | Path) -> None:
    """`cv.fold=<f>` outside `--multirun sweep=cv`: a ConfigError naming the fix; Hydra's fresh run folder removed."""
    if is_fresh_run_dir(Path(run_dir)):
        shutil.rmtree(run_dir, ignore_errors=True)
    raise ConfigError(
        f"cv.fold={cfg.cv.fold}: a fold trains inside its cross-validation. Fix: python -m "
        "xray_exp.train --multirun sweep=cv cv.folds=<k> (finished folds are kept, not retrained)"
    )


def finish_cv_sweep(config: DictConfig, info: dict[str, Any], aborted: BaseException | None) -> dict[str, Any]:
    """After the last fold: OOF predictions, cv_metrics.json, report.md (xray_exp.cv.finish), the parent run ended.
    Returns what to add to sweep.json."""
    cv_dir = Path(info["sweep_dir"])
    record = refresh_cv_record(cv_dir)
    states = [run["status"] for run in record["fold_runs"]]
    out: dict[str, Any] = {
        "jobs": len(states),
        "jobs_succeeded": states.count("FINISHED"),
        "jobs_failed": states.count("FAILED"),
        "registration": None,
        "cv_dir": str(cv_dir),
    }
    result = None
    if aborted is None and "FINISHED" in states:
        try:
            result = finish_cv(cv_dir, allow_missing=bool(config.cv.allow_missing))
        except Exception as exc:  # the folds stay; `python -m xray_exp.folds cv_dir=...` finishes again
            log.error("finishing the cross-validation failed: %s: %s", type(exc).__name__, exc)
            out["finish_error"] = f"{type(exc).__name__}: {exc}"
    out["complete"] = bool(result and result.get("complete"))
    if info.get("parent_run_id"):
        from xray_exp.mlops.client import tracking_client  # lazy: only on this path

        client = tracking_client(info["tracking_uri"], timeout_s=config.tracking.timeout_s)
        client.set_tag(info["parent_run_id"], "registry.decision", not_registered_note(config))
        status = "FINISHED" if out["complete"] else "FAILED"
        if isinstance(aborted, KeyboardInterrupt):
            status = "KILLED"
        client.set_terminated(info["parent_run_id"], status=status)
        print(f" MLflow parent run {info['parent_run_id']} ({status}) at {info['tracking_uri']}", flush=True)
    failed = [run["fold"] for run in record["fold_runs"] if run["status"] != "FINISHED"]
    if failed and aborted is None:
        print(
            f" folds {failed} did not finish: run the same command again to train them (finished folds are "
            "kept)" + ("" if config.cv.allow_missing else "; cv.allow_missing=true scores the others"),
            flush=True,
        )
    print(f"CV_DIR={cv_dir}\nSWEEP_DIR={cv_dir}", flush=True)
    return out
