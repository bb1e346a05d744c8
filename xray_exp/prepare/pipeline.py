"""The prepare pipeline: importer -> patients -> split -> parallel conversion -> data.yaml, manifest, report.

    from xray_exp.prepare.pipeline import run_prepare
    report = run_prepare(PrepareConfig(source="/data/nih", out_dir="/tmp/nih", dataset=...))

`python -m xray_exp.prepare` is the Hydra front end to this.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import random
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, cast

from xray_exp.imaging import DEFAULT_LIMITS, DecodeLimits
from xray_exp.prepare.config import FusionMethod, PrepareConfig, SourceFormat
from xray_exp.prepare.convert import (
    DICOM_SUFFIXES,
    ConvertResult,
    ConvertTask,
    convert_image,
    read_patient_id,
)
from xray_exp.prepare.readers import exclude_readers
from xray_exp.prepare.records import BOX_OUTSIDE, CORRUPT_IMAGE, ImageRecord, Issue, IssueLog, PrepareError
from xray_exp.prepare.report import build_report, write_prepare_report
from xray_exp.prepare.sources import DISCOVERS_CLASSES, load_source
from xray_exp.prepare.split import SplitItem, assign_splits, normalise_ratios
from xray_exp.prepare.store import DatasetStore
from xray_exp.prepare.summary import write_dataset_summary
from xray_exp.prepare.workers import Workers, default_workers

log = logging.getLogger("xray_exp.prepare")


def check_settings(cfg: PrepareConfig) -> None:
    """Value checks the schema's types cannot express; the message names the key."""
    problems = []
    if cfg.longest_side is not None and cfg.longest_side < 32:
        problems.append(f"longest_side={cfg.longest_side} (>= 32, or null to keep the size)")
    if not 0 <= cfg.png_compression <= 9:
        problems.append(f"png_compression={cfg.png_compression} (0-9)")
    if not 0 < cfg.fusion.iou_thr <= 1:
        problems.append(f"fusion.iou_thr={cfg.fusion.iou_thr} (in (0, 1])")
    if cfg.fusion.min_readers < 1:
        problems.append(f"fusion.min_readers={cfg.fusion.min_readers} (>= 1)")
    if not 0 <= cfg.fusion.skip_box_thr <= 1:
        problems.append(f"fusion.skip_box_thr={cfg.fusion.skip_box_thr} (in [0, 1])")
    for key in ("train", "val"):
        if getattr(cfg.split, key) <= 0:
            problems.append(f"split.{key}={getattr(cfg.split, key)} (> 0)")
    if cfg.split.test < 0:
        problems.append(f"split.test={cfg.split.test} (>= 0)")
    if cfg.workers is not None and cfg.workers < 1:
        problems.append(f"workers={cfg.workers} (>= 1, or null for all cores)")
    if cfg.limit is not None and cfg.limit < 1:
        problems.append(f"limit={cfg.limit} (>= 1, or null for all images)")
    classes = list(cfg.dataset.classes)
    if (not classes and SourceFormat(cfg.dataset.format) not in DISCOVERS_CLASSES) or len(set(classes)) != len(classes):
        problems.append(f"dataset.classes={classes} (non-empty, no duplicates)")
    if cfg.summary.tile < 64 or cfg.summary.examples < 0:
        problems.append(f"summary.tile={cfg.summary.tile} (>= 64), summary.examples={cfg.summary.examples} (>= 0)")
    if problems:
        raise PrepareError("invalid settings: " + "; ".join(problems))


def decode_limits(cfg) -> DecodeLimits:
    return DecodeLimits(cfg.max_pixel_bytes, cfg.max_decompressed_bytes)


def attach_patients(
    records: list[ImageRecord], workers: Workers, issues: IssueLog, limits: DecodeLimits = DEFAULT_LIMITS
) -> list[ImageRecord]:
    """Patient ids: the CSV's, else the DICOM header's PatientID, else the image id. A DICOM whose header
    cannot be read is a corrupt image (dropped)."""
    need = [r for r in records if r.patient_id is None and r.path.lower().endswith(DICOM_SUFFIXES)]
    reader = functools.partial(read_patient_id, limits=limits)
    found = dict(zip((r.image_id for r in need), workers.map(reader, [r.path for r in need]), strict=True))
    out = []
    for record in records:
        patient, error = found.get(record.image_id, (None, None))
        if error:
            issues.add(Issue(CORRUPT_IMAGE, error, record.image_id))
            continue
        if record.patient_id is None and patient is None:
            issues.notes["patient_id_from_image_id"] += 1
        out.append(dataclasses.replace(record, patient_id=record.patient_id or patient or record.image_id))
    return out


def input_key(record: ImageRecord) -> str:
    """Changes when the image's file or boxes change: its finished output is then redone."""
    text = repr((record.path, record.boxes, record.readers))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def plain(node: object) -> dict[str, Any]:
    """A config dataclass as plain JSON-able data (enums as their names)."""
    from omegaconf import OmegaConf

    # A dataclass becomes a DictConfig with str keys, so its container is a dict[str, ...].
    return cast("dict[str, Any]", OmegaConf.to_container(OmegaConf.structured(node), enum_to_str=True))


def processing_settings(cfg: PrepareConfig, source: Path) -> dict:
    """Settings that change pixels or labels of every image: a change rebuilds the dataset."""
    return {
        "source": str(source),
        "format": plain(cfg.dataset)["format"],
        "classes": list(cfg.dataset.classes),
        "longest_side": cfg.longest_side,
        "png_compression": cfg.png_compression,
        # min_readers / readers only when set: datasets prepared before they existed are not rebuilt
        "fusion": {k: v for k, v in plain(cfg.fusion).items() if k != "min_readers" or v != 1},
        **({"readers": plain(cfg.readers)} if cfg.readers.exclude else {}),
    }


def _entry(result: ConvertResult, record: ImageRecord, split: str, key: str) -> dict:
    return {
        "image_id": record.image_id,
        "split": split,
        "patient_id": record.patient_id,
        "source": record.path,
        "key": key,
        "source_size": list(result.source_size),
        "size": list(result.size),
        "boxes": [[c, list(box)] for c, box in result.boxes],
        "raw_boxes": result.raw_boxes,
        "clipped": result.clipped,
        "box_readers": result.box_readers,
        "dicom": result.dicom,
        "issues": [issue.to_dict() for issue in result.issues],
    }


def convert_all(
    pool: Workers,
    tasks: list[ConvertTask],
    records: dict[str, ImageRecord],
    assignment: dict[str, str],
    keys: dict[str, str],
    store: DatasetStore,
    issues: IssueLog,
    cfg: PrepareConfig,
) -> tuple[list[dict], int]:
    """Convert in parallel; journal each finished image as it arrives. Returns (new entries, failures)."""
    from tqdm import tqdm

    new, failed = [], 0
    with tqdm(total=len(tasks), unit="img", desc=f"prepare {cfg.dataset.name}", disable=not cfg.progress) as bar:
        try:
            for result in pool.unordered(convert_image, tasks):
                bar.update()
                record = records[result.image_id]
                if result.ok:
                    entry = _entry(result, record, assignment[record.image_id], keys[record.image_id])
                    store.append(entry)
                    new.append(entry)
                else:
                    failed += 1
                    if result.dropped_min_readers and not result.issues:
                        issues.notes["images_below_min_readers"] += 1
                    elif all(i.kind == BOX_OUTSIDE for i in result.issues):
                        issues.notes["images_without_usable_boxes"] += 1
                issues.notes["boxes_below_min_readers"] += result.dropped_min_readers
                issues.extend(result.issues)
        except BrokenProcessPool as exc:
            raise PrepareError(
                f"a worker process died ({exc}); out of memory? re-run with fewer workers: it resumes"
            ) from exc
    return new, failed


def run_prepare(cfg: PrepareConfig) -> dict:
    """Prepare the dataset described by `cfg`; returns the report (also written to prepare_report.json)."""
    started = time.perf_counter()
    check_settings(cfg)
    source = Path(cfg.source).expanduser().resolve()
    if not source.is_dir():
        raise PrepareError(f"source={cfg.source}: not a folder")
    out_dir = Path(cfg.out_dir).expanduser().resolve()
    ratios = normalise_ratios({"train": cfg.split.train, "val": cfg.split.val, "test": cfg.split.test})
    method = FusionMethod(cfg.fusion.method).value
    issues = IssueLog(strict=cfg.strict)

    records = exclude_readers(load_source(source, cfg.dataset, issues, cfg.split.seed), cfg.readers.exclude, issues)
    listed = len(records)
    if cfg.limit is not None and cfg.limit < len(records):
        records = sorted(random.Random(cfg.split.seed).sample(records, cfg.limit), key=lambda r: r.image_id)
    workers = min(cfg.workers or default_workers(), max(len(records), 1))
    if method == "wbf" and workers > 1 and any(len(r.readers) > 1 for r in records):
        import ensemble_boxes  # noqa: F401  imported once here, inherited by forked workers

    with Workers(workers) as pool:
        records = attach_patients(records, pool, issues, decode_limits(cfg))
        if not records:
            raise PrepareError(f"no usable images in {source} (dataset={cfg.dataset.name}); see the issues above")
        if issues.notes["patient_id_from_image_id"]:
            log.warning(
                "%d of %d images have no patient id (annotations, dataset.patients or DICOM PatientID): they are "
                "split image by image, so one patient's images may land in different splits",
                issues.notes["patient_id_from_image_id"],
                len(records),
            )
        by_id = {r.image_id: r for r in records}
        # attach_patients gave every record a patient id (the image id at worst): `or` only tells the type checker.
        split_items = [SplitItem(r.image_id, r.patient_id or r.image_id, r.class_ids) for r in records]
        assignment = assign_splits(split_items, ratios, cfg.split.seed)
        keys = {r.image_id: input_key(r) for r in records}
        for split in sorted(set(ratios) - set(assignment.values())):
            issues.notes[f"empty_split_{split}"] = 1
            log.warning("split %s is empty: too few patients (%d) for the ratios", split, len(split_items))

        store = DatasetStore(out_dir)
        settings = processing_settings(cfg, source)
        done = store.reconcile(assignment, keys, store.open(settings))
        for entry in done.values():
            issues.extend(Issue(**item) for item in entry["issues"])
        todo = [r for r in records if r.image_id not in done]
        if done:
            log.info("resuming: %d of %d images already done, %d to convert", len(done), len(records), len(todo))
        tasks = [
            ConvertTask(
                r.image_id,
                r.path,
                str(store.image_path(assignment[r.image_id], r.image_id)),
                str(store.label_path(assignment[r.image_id], r.image_id)),
                r.boxes,
                r.readers,
                cfg.longest_side,
                method,
                cfg.fusion.iou_thr,
                cfg.fusion.skip_box_thr,
                cfg.png_compression,
                decode_limits(cfg),
                cfg.fusion.min_readers,
            )
            for r in todo
        ]
        convert_started = time.perf_counter()
        new, failed = convert_all(pool, tasks, by_id, assignment, keys, store, issues, cfg)
        convert_seconds = time.perf_counter() - convert_started

    entries = sorted([*done.values(), *new], key=lambda e: e["image_id"])
    names = list(cfg.dataset.classes)
    files = []
    if entries:
        store.write_data_yaml(names, with_test="test" in ratios)
        store.write_manifest(entries, names)
        files += ["data.yaml", "manifest.csv"]
        if cfg.summary.enabled:
            write_dataset_summary(store, entries, names, cfg.summary.examples, cfg.summary.tile)
            files += ["summary.json", "summary.png", "examples.png"]
    counts = {
        "listed": listed,
        "selected": len(by_id),
        "already_done": len(done),
        "converted_now": len(new),
        "failed": failed,
    }
    report = build_report(
        name=cfg.dataset.name,
        source=source,
        out_dir=out_dir,
        settings={
            **settings,
            "split": plain(cfg.split),
            "limit": cfg.limit,
            "strict": cfg.strict,
            "dataset": plain(cfg.dataset),
        },
        entries=entries,
        counts=counts,
        log=issues,
        seconds=time.perf_counter() - started,
        convert_seconds=convert_seconds,
        workers=workers,
        files=[*files, "prepare_report.json"],
    )
    write_prepare_report(report, out_dir / "prepare_report.json")
    if not entries:
        raise PrepareError(f"no image could be converted from {source}; see {out_dir / 'prepare_report.json'}")
    return report
