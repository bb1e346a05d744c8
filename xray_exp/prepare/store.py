"""The prepared dataset on disk, and what makes re-runs resume instead of redo.

    out_dir/
      data.yaml  manifest.csv  prepare_report.json  summary.json  summary.png  examples.png
      images/{train,val,test}/<id>.png   labels/{train,val,test}/<id>.txt
      .prepare/state.json     fingerprint of the settings that change pixels or labels
      .prepare/journal.jsonl  one line per finished image (written by the main process only)
      .prepare/runs/<time>/   Hydra's own outputs and log

An image is finished when its journal line and both files exist. A re-run with the same fingerprint
keeps finished images (moving them when the split changed) and deletes anything else under images/ and
labels/; a different fingerprint starts over.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import shutil
from pathlib import Path

from xray_exp.prepare.convert import atomic_write
from xray_exp.prepare.records import PrepareError

SPLITS = ("train", "val", "test")
STATE_VERSION = 1
log = logging.getLogger("xray_exp.prepare")


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class DatasetStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.meta = self.root / ".prepare"
        self.journal_path = self.meta / "journal.jsonl"
        self.state_path = self.meta / "state.json"

    def image_path(self, split: str, image_id: str) -> Path:
        return self.root / "images" / split / f"{image_id}.png"

    def label_path(self, split: str, image_id: str) -> Path:
        return self.root / "labels" / split / f"{image_id}.txt"

    def open(self, settings: dict) -> dict[str, dict]:
        """Create the layout; return the journal of finished images (empty if the settings changed)."""
        key = fingerprint(settings)
        state = self._read_state()
        has_data = any((self.root / kind).exists() for kind in ("images", "labels"))
        if state is None and has_data:
            raise PrepareError(
                f"out_dir={self.root} holds images/ or labels/ not written by prepare "
                f"(no {self.state_path.relative_to(self.root)}); choose another out_dir or remove them"
            )
        journal: dict[str, dict] = {}
        if state is not None and state.get("fingerprint") == key:
            journal = self._read_journal()
        elif state is not None:
            log.info("settings changed since the last run (%s): rebuilding %s", self.state_path, self.root)
            for kind in ("images", "labels"):
                shutil.rmtree(self.root / kind, ignore_errors=True)
            self.journal_path.unlink(missing_ok=True)
        self.meta.mkdir(parents=True, exist_ok=True)
        state = {"version": STATE_VERSION, "fingerprint": key, "settings": settings}
        atomic_write(self.state_path, json.dumps(state, indent=2, default=str).encode())
        for kind in ("images", "labels"):
            for split in SPLITS:
                (self.root / kind / split).mkdir(parents=True, exist_ok=True)
        return journal

    def reconcile(self, assignment: dict[str, str], keys: dict[str, str], journal: dict[str, dict]) -> dict[str, dict]:
        """Keep finished images still wanted with the same input `keys` (moved to their split); delete
        everything else under images/ and labels/. Returns the finished entries, split updated."""
        done: dict[str, dict] = {}
        for image_id, entry in journal.items():
            split = assignment.get(image_id)
            old = entry.get("split")
            if split is None or old not in SPLITS or entry.get("key") != keys.get(image_id):
                continue
            if not (self.image_path(old, image_id).is_file() and self.label_path(old, image_id).is_file()):
                continue
            if split != old:
                self.image_path(old, image_id).replace(self.image_path(split, image_id))
                self.label_path(old, image_id).replace(self.label_path(split, image_id))
                entry = {**entry, "split": split}
                self.append(entry)
            done[image_id] = entry
        for kind, suffix in (("images", ".png"), ("labels", ".txt")):
            for split in SPLITS:
                for path in (self.root / kind / split).iterdir():
                    stem = path.name[: -len(suffix)] if path.name.endswith(suffix) else None
                    if stem is None or done.get(stem, {}).get("split") != split:
                        path.unlink()
        return done

    def append(self, entry: dict) -> None:
        with open(self.journal_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def write_data_yaml(self, names: list[str], with_test: bool) -> Path:
        import yaml

        data: dict[str, str | dict[int, str]] = {
            "path": str(self.root.resolve()),
            "train": "images/train",
            "val": "images/val",
        }
        if with_test:
            data["test"] = "images/test"
        data["names"] = dict(enumerate(names))
        path = self.root / "data.yaml"
        atomic_write(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode())
        return path

    def write_manifest(self, entries: list[dict], names: list[str]) -> Path:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image_id", "patient_id", "split", "classes", "boxes", "source", "box_readers"])
        for e in sorted(entries, key=lambda e: (SPLITS.index(e["split"]), e["image_id"])):
            classes = "|".join(names[c] for c in sorted({b[0] for b in e["boxes"]}))
            writer.writerow(
                [
                    e["image_id"],
                    e["patient_id"],
                    e["split"],
                    classes,
                    len(e["boxes"]),
                    e["source"],
                    " ".join(str(n) for n in e.get("box_readers", [])),
                ]
            )
        path = self.root / "manifest.csv"
        atomic_write(path, buffer.getvalue().encode())
        return path

    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _read_journal(self) -> dict[str, dict]:
        entries: dict[str, dict] = {}
        try:
            lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return entries
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # the last line of a killed run may be cut short
                continue
            entries[entry["image_id"]] = entry
        return entries
