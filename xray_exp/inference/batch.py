"""The batch prediction run behind `python -m xray_exp.predict`: every input once, resumable, nothing lost.

    summary = run_predict(settings, predictor)   # settings: xray_exp.config.schema.PredictConfig

Writes into out_dir: predictions.jsonl (the journal, one line per image as it is done: a killed run resumes
from it and skips what is there), then predictions.csv (image,label,confidence,x1,y1,x2,y2 in original
pixels; an image without findings is one row with an empty label), predictions.json (model, settings, every
image with its findings, the unreadable files with why), images/<name>.png (save_images=true) and
sr/<name>.dcm (sr=true, DICOM inputs: xray_exp.sr). Unreadable files are listed and skipped; DatasetError
(non-zero exit) only when no file could be read.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from xray_exp.errors import DatasetError
from xray_exp.imaging import decode_xray_bytes, sniff_format
from xray_exp.inference.sources import Input

if TYPE_CHECKING:
    from xray_exp.inference.onnx_detector import Detection

log = logging.getLogger(__name__)

CSV_COLUMNS = ("image", "label", "confidence", "x1", "y1", "x2", "y2")
JOURNAL = "predictions.jsonl"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write via a temporary file and rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def load_journal(out_dir: Path) -> dict[str, dict]:
    """The records of a previous run by image name (a torn last line is ignored)."""
    path = out_dir / JOURNAL
    records: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[record["image"]] = record
    return records


def _finding(det) -> dict:
    return {
        "label": det.label,
        "class_id": det.class_id,
        "confidence": round(float(det.confidence), 6),
        "box": [round(float(v), 2) for v in det.box],
    }


def _journal_detection(finding: dict) -> Detection:
    """A finding read back from the journal as a Detection (for SR and annotation on resume)."""
    from xray_exp.inference.onnx_detector import Detection  # lazy: heavy (cv2, onnxruntime)

    x1, y1, x2, y2 = finding["box"]
    return Detection((x1, y1, x2, y2), finding["confidence"], finding["class_id"], finding["label"])


def predict_one(item: Input, predictor, out_dir: Path, save_images: bool, sr, previous: dict | None) -> dict:
    """One input -> its record (predicting only when `previous` has no findings for it)."""
    data = item.path.read_bytes()
    kind = sniff_format(data)
    if previous is not None and "findings" in previous:
        record, detections = dict(previous), [_journal_detection(f) for f in previous["findings"]]
        gray = None
    else:
        gray = decode_xray_bytes(data)
        detections = predictor.predict(gray)
        record = {
            "image": item.name,
            "path": str(item.path),
            "format": kind,
            "width": int(gray.shape[1]),
            "height": int(gray.shape[0]),
            "findings": [_finding(d) for d in detections],
        }
    if save_images and not (out_dir / "images" / f"{item.stem}.png").is_file():
        from xray_exp.serve.annotate import annotate, encode_png  # lazy: only on this path

        gray = decode_xray_bytes(data) if gray is None else gray
        write_atomic(out_dir / "images" / f"{item.stem}.png", encode_png(annotate(gray, detections)))
        record["annotated"] = f"images/{item.stem}.png"
    if sr is not None and kind == "dicom" and not (out_dir / "sr" / f"{item.stem}.dcm").is_file():
        record.update(sr.write(item, detections, out_dir / "sr" / f"{item.stem}.dcm"))
    return record


def needs_work(item: Input, previous: dict | None, out_dir: Path, save_images: bool, sr) -> bool:
    if previous is None or "findings" not in previous:
        return True
    if save_images and not (out_dir / "images" / f"{item.stem}.png").is_file():
        return True
    return (
        sr is not None
        and previous.get("format") == "dicom"
        and "sr_error" not in previous
        and not (out_dir / "sr" / f"{item.stem}.dcm").is_file()
    )


def run_predict(
    inputs: list[Input],
    predictor,
    out_dir: Path,
    settings: dict,
    save_images: bool = False,
    sr=None,
    progress: bool = True,
) -> dict:
    """Predict every input (skipping those the journal has), then write the CSV and JSON. Returns a summary."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    for sub, on in (("images", save_images), ("sr", sr is not None)):
        if on:
            (out_dir / sub).mkdir(exist_ok=True)
    previous = load_journal(out_dir)
    todo = [item for item in inputs if needs_work(item, previous.get(item.name), out_dir, save_images, sr)]
    skipped = len(inputs) - len(todo)
    if skipped:
        print(f"resuming: {skipped} of {len(inputs)} images already predicted in {out_dir}", flush=True)
    with (out_dir / JOURNAL).open("a") as journal:
        for item in tqdm(todo, desc="predict", unit="image", disable=not progress):
            try:
                record = predict_one(item, predictor, out_dir, save_images, sr, previous.get(item.name))
            except Exception as exc:  # unreadable input: decoders raise many types; listed, never fatal alone
                record = {"image": item.name, "path": str(item.path), "error": f"{type(exc).__name__}: {exc}"}
                log.warning("unreadable %s: %s", item.path, record["error"])
            previous[item.name] = record
            journal.write(json.dumps(record) + "\n")
            journal.flush()
    records = [previous[item.name] for item in inputs]
    return write_outputs(records, out_dir, predictor, settings)


def write_outputs(records: list[dict], out_dir: Path, predictor, settings: dict) -> dict:
    done = [r for r in records if "findings" in r]
    unreadable = [{"image": r["image"], "path": r["path"], "error": r["error"]} for r in records if "error" in r]
    rows = []
    for r in done:
        for f in r["findings"] or [None]:
            rows.append(
                {"image": r["image"], "label": "", "confidence": "", "x1": "", "y1": "", "x2": "", "y2": ""}
                if f is None
                else {
                    "image": r["image"],
                    "label": f["label"],
                    "confidence": f["confidence"],
                    **dict(zip(("x1", "y1", "x2", "y2"), f["box"], strict=True)),
                }
            )
    with (out_dir / ".predictions.csv.tmp").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(out_dir / ".predictions.csv.tmp", out_dir / "predictions.csv")
    summary = {
        "images": len(records),
        "predicted": len(done),
        "unreadable": len(unreadable),
        "findings": sum(len(r["findings"]) for r in done),
        "without_findings": sum(1 for r in done if not r["findings"]),
        "sr_written": sum(1 for r in done if r.get("sr")),
        "sr_errors": sum(1 for r in done if r.get("sr_error")),
    }
    body = {
        "model": predictor.describe(),
        "settings": settings,
        "summary": summary,
        "images": [{k: v for k, v in r.items() if k != "path"} | {"path": r["path"]} for r in done],
        "unreadable": unreadable,
    }
    write_atomic(out_dir / "predictions.json", json.dumps(body, indent=2))
    for entry in unreadable:
        print(f"unreadable: {entry['path']}: {entry['error']}", flush=True)
    if not done:
        raise DatasetError(
            f"none of the {len(records)} inputs could be read (listed in "
            f"{out_dir / 'predictions.json'}). Fix: pass PNG, JPEG or DICOM radiographs."
        )
    return summary
