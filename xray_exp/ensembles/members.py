"""Ensemble members from what the user names: CV folders, run folders, .pt/.onnx files, models:/ URIs.

    members, cvs, notes = resolve_members(["outputs/cv/nih-5f", "outputs/runs/a", "models:/yolo12s@development"],
                                          weights=[2, 1, 1], allow_missing=False, tracking_uri=uri,
                                          cache_dir="outputs/.cache")

A CV folder (`cv.json`, `folds.csv`; written by `sweep=cv`) gives its FINISHED fold models (a FAILED or
MISSING fold is refused unless `allow_missing`); a run folder its weights/best.onnx (or best.pt); a .pt
file the .onnx beside it; a models:/ URI the registered version's model.onnx (xray_exp.mlops.registry).
Every member is served through its ONNX file (inference.onnx_detector.OnnxDetector): a .pt without one beside it
is exported through the Ultralytics seam. Everything is checked before any model is exported or run.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from xray_exp.errors import ConfigError, ModelError
from xray_exp.mlops.registry import download_version, find_version, parse_models_uri
from xray_exp.yolo.export import export_onnx
from xray_exp.yolo.predict import trained_imgsz
from xray_exp.yolo.runtime import configure_offline

CV_FILE, FOLDS_FILE = "cv.json", "folds.csv"


@dataclass
class Member:
    name: str
    spec: str  # as given (the CV folder for a fold model)
    group: int  # index of the spec it came from (weights apply per spec)
    weight: float
    onnx: Path | None
    pt: Path | None = None
    fold: int | None = None
    run_id: str | None = None
    uri: str | None = None  # models:/<name>/<version> of a registered member
    model: str | None = None  # architecture name (yolo12s)
    imgsz: int | None = None
    names: list[str] = field(default_factory=list)

    def lineage(self) -> dict:
        return {
            "name": self.name,
            "spec": self.spec,
            "fold": self.fold,
            "run_id": self.run_id,
            "uri": self.uri,
            "weights": str(self.pt) if self.pt else None,
            "imgsz": self.imgsz,
            "weight": self.weight,
        }


@dataclass
class CvFolder:
    path: Path
    name: str
    data_yaml: Path
    group: int
    folds: dict[str, int]  # image id -> fold
    weight: float
    model: str | None = None
    parent_run_id: str | None = None


def read_cv(path: Path, group: int, weight: float, allow_missing: bool) -> tuple[CvFolder, list[Member], list[str]]:
    """A CV folder's fold models (FINISHED ones), checked against the CV folder contract."""
    try:
        cv = json.loads((path / CV_FILE).read_text())
        runs, data_yaml = cv["fold_runs"], Path(cv["data_yaml"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"{path / CV_FILE}: not a readable CV record ({exc}). Fix: point at a folder written by "
            "python -m xray_exp.train --multirun sweep=cv"
        ) from exc
    if not (path / FOLDS_FILE).is_file():
        raise ConfigError(f"{path}: no {FOLDS_FILE}. Fix: point at a complete CV folder (outputs/cv/<name>)")
    with (path / FOLDS_FILE).open(newline="") as handle:
        folds = {row["image"]: int(row["fold"]) for row in csv.DictReader(handle)}
    by_fold = {int(r["fold"]): r for r in runs}
    bad = {f: by_fold.get(f, {}).get("status", "MISSING") for f in range(int(cv.get("folds", len(runs))))}
    bad = {f: s for f, s in bad.items() if s != "FINISHED" or not (by_fold[f].get("onnx") or by_fold[f].get("weights"))}
    notes = []
    if bad:
        listed = ", ".join(f"fold {f} {s if s != 'FINISHED' else 'without weights'}" for f, s in sorted(bad.items()))
        if not allow_missing:
            raise ConfigError(
                f"cv={path}: {listed}. Fix: re-run the CV command (finished folds are kept) or ensemble "
                "the finished folds only with allow_missing=true"
            )
        notes.append(f"{path.name}: left out {listed} (allow_missing=true)")
    members = []
    for f in sorted(set(by_fold) - set(bad)):
        r = by_fold[f]
        onnx = Path(r["onnx"]) if r.get("onnx") else None
        members.append(
            Member(
                f"{cv.get('name', path.name)}-fold{f}",
                str(path),
                group,
                weight,
                onnx,
                Path(r["weights"]) if r.get("weights") else None,
                fold=f,
                run_id=r.get("mlflow_run_id"),
                model=cv.get("model"),
            )
        )
    if not members:
        raise ConfigError(f"cv={path}: no finished fold to ensemble")
    record = CvFolder(
        path, cv.get("name", path.name), data_yaml, group, folds, weight, cv.get("model"), cv.get("parent_run_id")
    )
    return record, members, notes


def run_folder_member(path: Path, group: int, weight: float) -> Member:
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").is_file() else {}
    onnx, pt = path / "weights" / "best.onnx", path / "weights" / "best.pt"
    if not onnx.is_file() and not pt.is_file():
        raise ConfigError(
            f"{path}: a folder without weights/best.onnx or weights/best.pt. Fix: pass a run folder "
            "made by xray_exp.train, a CV folder, a .pt/.onnx file or a models:/ URI"
        )
    return Member(
        path.name,
        str(path),
        group,
        weight,
        onnx if onnx.is_file() else None,
        pt if pt.is_file() else None,
        run_id=summary.get("mlflow_run_id"),
        model=summary.get("model"),
    )


def file_member(path: Path, group: int, weight: float) -> Member:
    if path.suffix == ".onnx":
        pt = path.with_suffix(".pt")
        return Member(
            path.stem if path.parent.name != "weights" else path.parent.parent.name,
            str(path),
            group,
            weight,
            path,
            pt if pt.is_file() else None,
        )
    if path.suffix == ".pt":
        onnx = path.with_suffix(".onnx")
        return Member(
            path.stem if path.parent.name != "weights" else path.parent.parent.name,
            str(path),
            group,
            weight,
            onnx if onnx.is_file() else None,
            path,
        )
    raise ConfigError(f"{path}: not a .pt or .onnx file")


def registry_member(uri: str, group: int, weight: float, tracking_uri: str | None, cache_dir: Path) -> Member:
    name, alias, version = parse_models_uri(uri)
    if version is None:
        version = str(find_version(name, alias, tracking_uri).version)
    folder = download_version(name, version, tracking_uri, cache_dir / "registry")
    return Member(
        f"{name}-v{version}",
        uri,
        group,
        weight,
        folder / "model.onnx",
        folder / "best.pt",
        uri=f"models:/{name}/{version}",
        model=name,
    )


def parse_specs(
    specs: list[str], weights: list[float] | None, allow_missing: bool, tracking_uri: str | None, cache_dir: str | Path
) -> tuple[list[Member], list[CvFolder], list[str]]:
    """Every member of every spec, with the problems a user can fix raised first (nothing run yet)."""
    if not specs:
        raise ConfigError("no members. Fix: cv=outputs/cv/<name> or models=[run folder, .pt/.onnx, models:/...]")
    if weights is not None and len(weights) != len(specs):
        raise ConfigError(
            f"weights: {len(weights)} values for {len(specs)} members ({', '.join(specs)}). Fix: one "
            "weight per entry of models (a CV folder counts once)"
        )
    members, cvs, notes = [], [], []
    for group, spec in enumerate(specs):
        weight = float(weights[group]) if weights is not None else 1.0
        if str(spec).startswith("models:/"):
            members.append(registry_member(str(spec), group, weight, tracking_uri, Path(cache_dir)))
            continue
        path = Path(str(spec)).expanduser().resolve()
        if path.is_dir() and (path / CV_FILE).is_file():
            cv, fold_members, cv_notes = read_cv(path, group, weight, allow_missing)
            cvs.append(cv)
            members += fold_members
            notes += cv_notes
        elif path.is_dir():
            members.append(run_folder_member(path, group, weight))
        elif path.is_file():
            members.append(file_member(path, group, weight))
        else:
            raise ConfigError(
                f"member {spec}: {path} does not exist. Fix: a CV folder, run folder, .pt/.onnx file or "
                "a models:/<name>@<alias> URI"
            )
    for m in members:
        if m.onnx is not None and not m.onnx.is_file():
            if m.pt is None or not m.pt.is_file():
                raise ModelError(f"member {m.name}: {m.onnx} is missing and there is no .pt to export it from")
            m.onnx = None
        if m.onnx is None and (m.pt is None or not m.pt.is_file()):
            raise ModelError(f"member {m.name}: no weights file ({m.pt})")
    seen: dict[str, int] = {}
    for m in members:  # unique names (the same run twice, two CVs with one name)
        seen[m.name] = seen.get(m.name, 0) + 1
        if seen[m.name] > 1:
            m.name = f"{m.name}-{seen[m.name]}"
    return members, cvs, notes


def export_missing(members: list[Member], settings_dir: str | Path) -> list[str]:
    """Export every member that has a .pt only (Ultralytics seam; at its training size, static batch 1)."""
    notes: list[str] = []
    todo = [m for m in members if m.onnx is None]
    if not todo:
        return notes

    configure_offline(Path(settings_dir))

    for m in todo:
        if m.pt is None:  # every member is resolved with an ONNX file or weights
            raise ModelError(f"member {m.name}: neither an ONNX file nor weights to export one from")
        size = trained_imgsz(m.pt)
        if size is None:
            raise ModelError(f"member {m.name}: {m.pt} records no training image size; export it by hand")
        m.onnx = export_onnx(m.pt, imgsz=size)
        notes.append(f"{m.name}: exported {m.pt.name} -> {m.onnx} (imgsz {size})")
    return notes


def read_onnx_facts(members: list[Member]) -> list[str]:
    """Class names and image size of every member from its ONNX metadata; a different class list is refused,
    different sizes are allowed (each member runs at its own) and said."""
    import onnxruntime as ort

    from xray_exp.inference.onnx_detector import parse_metadata  # lazy: heavy (cv2, onnxruntime)

    for m in members:
        meta = parse_metadata(
            ort.InferenceSession(str(m.onnx), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
        )
        names = meta.get("names") or {}
        m.names = [names[i] for i in sorted(names)]
        m.imgsz = int(max(meta["imgsz"])) if "imgsz" in meta else None
    first = members[0]
    for m in members[1:]:
        if m.names != first.names:
            raise ConfigError(
                f"members predict different classes: {first.name} {first.names}, {m.name} {m.names}. "
                "Fix: ensemble models trained on the same class list"
            )
    sizes = {m.imgsz for m in members}
    if len(sizes) > 1:
        return ["members run at their own image sizes: " + ", ".join(f"{m.name} {m.imgsz}" for m in members)]
    return []


def resolve_members(
    specs: list[str],
    weights: list[float] | None,
    *,
    allow_missing: bool,
    tracking_uri: str | None,
    cache_dir: str | Path,
    settings_dir: str | Path,
) -> tuple[list[Member], list[CvFolder], list[str]]:
    members, cvs, notes = parse_specs(specs, weights, allow_missing, tracking_uri, cache_dir)
    notes += export_missing(members, settings_dir)
    notes += read_onnx_facts(members)
    return members, cvs, notes
