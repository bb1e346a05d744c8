"""The prepare report: prepare_report.json next to the data, and its console summary.

report = build_report(...); print(console_summary(report))
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from xray_exp.prepare.convert import atomic_write
from xray_exp.prepare.records import IssueLog
from xray_exp.prepare.store import SPLITS

MAX_LISTED_ISSUES = 1000


def build_report(
    *,
    name: str,
    source: Path,
    out_dir: Path,
    settings: dict,
    entries: list[dict],
    counts: dict,
    log: IssueLog,
    seconds: float,
    convert_seconds: float,
    workers: int,
    files: list[str],
) -> dict:
    """Everything a user needs to trust (or distrust) the prepared dataset."""
    splits = {}
    for split in SPLITS:
        mine = [e for e in entries if e["split"] == split]
        splits[split] = {
            "images": len(mine),
            "patients": len({e["patient_id"] for e in mine}),
            "background_images": sum(1 for e in mine if not e["boxes"]),
            "boxes": sum(len(e["boxes"]) for e in mine),
        }
    converted = counts["converted_now"]
    return {
        "dataset": name,
        "source": str(source),
        "out_dir": str(out_dir),
        "data_yaml": str(out_dir / "data.yaml"),
        "files": files,
        "seconds": round(seconds, 2),
        "workers": workers,
        "images": {
            **counts,
            "written": len(entries),
            "images_per_second": round(converted / convert_seconds, 2) if converted and convert_seconds else None,
        },
        "boxes": {
            "source_boxes": sum(e["raw_boxes"] for e in entries),
            "clipped": sum(e["clipped"] for e in entries),
            "written": sum(len(e["boxes"]) for e in entries),
        },
        "splits": splits,
        "dicom": {
            "photometric": dict(Counter(e["dicom"].get("photometric") for e in entries if e["dicom"])),
            "bits_stored": dict(Counter(str(e["dicom"].get("bits_stored")) for e in entries if e["dicom"])),
        },
        "issues": {
            "total": len(log.issues),
            "counts": log.counts(),
            "list": [issue.to_dict() for issue in log.issues[:MAX_LISTED_ISSUES]],
            "truncated": len(log.issues) > MAX_LISTED_ISSUES,
        },
        "notes": dict(sorted(log.notes.items())),
        "settings": settings,
    }


def write_prepare_report(report: dict, path: Path) -> None:
    atomic_write(path, json.dumps(report, indent=2, default=str).encode())


def console_summary(report: dict) -> str:
    images, boxes = report["images"], report["boxes"]
    rate = f", {images['images_per_second']} images/s" if images["images_per_second"] else ""
    lines = [
        f"prepare {report['dataset']}: {images['listed']} usable images listed, {images['selected']} "
        f"selected -> {images['written']} written ({images['converted_now']} converted now, "
        f"{images['already_done']} already done, {images['failed']} failed) in {report['seconds']} s "
        f"with {report['workers']} worker(s){rate}",
        "  splits:  "
        + " | ".join(
            f"{split} {s['images']} images, {s['patients']} patients, {s['background_images']} background, "
            f"{s['boxes']} boxes"
            for split, s in report["splits"].items()
        ),
        f"  boxes:   {boxes['source_boxes']} reader boxes -> {boxes['written']} written "
        f"({boxes['clipped']} clipped to the image)",
    ]
    issues = report["issues"]
    if issues["total"]:
        counts = ", ".join(f"{k} {v}" for k, v in issues["counts"].items())
        lines.append(f"  issues:  {issues['total']} skipped: {counts}")
        lines += [f"           e.g. {item['kind']}: {item['message']}" for item in issues["list"][:3]]
    else:
        lines.append("  issues:  none")
    if report["notes"]:
        lines.append("  notes:   " + ", ".join(f"{k} {v}" for k, v in report["notes"].items()))
    lines.append(f"  data:    {report['data_yaml']}")
    lines.append(f"  files:   {report['out_dir']}/{{{','.join(report['files'])}}}")
    return "\n".join(lines)
