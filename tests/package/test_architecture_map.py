"""docs/architecture.md's "Who may import what" table is the package's module map, checked against the code:
every import between areas is named in the importer's row, and every name in a row is still imported.

    python -m pytest tests/package/test_architecture_map.py -q

A row's first cell lists its areas (`runs/` a folder, `evaluate.py` a root module); its last cell what they
import: `mlops/` stands for any module of that folder, `mlops/registry` for that module only, `errors` for
the root module. Imports inside an area are not listed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from test_import_graph import own_imports

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "xray_exp"
DOC = REPO / "docs" / "architecture.md"
TICKED = re.compile(r"`([^`]+)`")


def area_of(module: str, package: Path) -> str:
    """xray_exp.runs.lifecycle -> "runs/"; xray_exp.evaluate -> "evaluate"; xray_exp -> "__init__"."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    return parts[0] + "/" if package.joinpath(parts[0]).is_dir() else parts[0]


def name_of(module: str, package: Path) -> str:
    """The name a row uses: "mlops/registry" for a module of a folder, "imaging/" for a package's face."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    if len(parts) == 1:
        return parts[0] + "/" if package.joinpath(parts[0]).is_dir() else parts[0]
    return "/".join(parts[:2])


def read_map(doc: Path) -> list[tuple[list[str], set[str]]]:
    """[(areas of a row, names they may import)] from the table under "## Who may import what"."""
    text = doc.read_text().split("## Who may import what", 1)[1]
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        areas = [t.removesuffix(".py") for t in TICKED.findall(cells[0])]
        rows.append((areas, {t.removesuffix(".py") for t in TICKED.findall(cells[2])}))
    return rows


def covers(listed: str, name: str) -> bool:
    """`mlops/` covers mlops/registry and mlops/; `imaging` covers imaging/; `mlops/registry` only itself."""
    same = name == listed or name.rstrip("/") == listed.rstrip("/")
    return same or (listed.endswith("/") and name.startswith(listed))


def map_errors(package: Path, doc: Path) -> list[str]:
    rows = read_map(doc)
    allowed = {area: names for areas, names in rows for area in areas}
    used: dict[str, set[str]] = defaultdict(set)
    for importer, imported, *_ in own_imports(package):
        here, there = area_of(importer, package), area_of(imported, package)
        if here != there:
            used[here].add(name_of(imported, package))
    errors = [f"{area}: no row in the table" for area in sorted(set(used) - set(allowed))]
    for area, names in sorted(used.items()):
        errors += [
            f"{area} imports {name}, which its row does not name"
            for name in sorted(names)
            if not any(covers(listed, name) for listed in allowed.get(area, ()))
        ]
    for areas, names in rows:  # every name a row lists is imported by one of its areas
        imported = set().union(*(used.get(area, set()) for area in areas))
        errors += [
            f"{' '.join(areas)}: the row names {listed}, which none of them imports"
            for listed in sorted(names)
            if not any(covers(listed, name) for name in imported)
        ]
    return errors


def test_the_architecture_table_matches_the_imports():
    rows = read_map(DOC)
    assert len(rows) > 15 and (["metrics/", "gating/"], {"errors"}) in rows
    errors = map_errors(PACKAGE, DOC)
    assert not errors, "docs/architecture.md 'Who may import what' is out of date:\n" + "\n".join(errors)


def test_the_check_finds_an_unlisted_import_and_a_stale_name(tmp_path):
    package = tmp_path / "xray_exp"
    for folder in ("runs", "metrics"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("")
    (package / "runs" / "lifecycle.py").write_text("from xray_exp.metrics import x\nfrom xray_exp import errors\n")
    (package / "metrics" / "ap.py").write_text("x = 1\n")
    doc = tmp_path / "architecture.md"
    doc.write_text(
        "## Who may import what\n\n| area | owns | imports |\n| --- | --- | --- |\n"
        "| `runs/` | the lifecycle | `errors` `data/` |\n| `metrics/` | metrics | |\n"
    )
    assert map_errors(package, doc) == [
        "runs/ imports metrics/, which its row does not name",
        "runs/: the row names data/, which none of them imports",
    ]
