"""No two top-level functions or classes with one name across the package (entry points `main`/`cli` aside):
a name says which thing it is, so a grep for it finds that thing.

    .venv/bin/pytest tests/package/test_package_names.py
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "xray_exp"
ENTRY_POINTS = {"main", "cli"}
KNOWN: set[str] = set()  # names still defined twice (none): this set may only shrink


def top_level_names(package: Path) -> dict[str, list[str]]:
    """{name: ["module.py:line", ...]} of the functions and classes defined at module level."""
    names: dict[str, list[str]] = defaultdict(list)
    for path in sorted(package.rglob("*.py")):
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names[node.name].append(f"{path.relative_to(package.parent)}:{node.lineno}")
    return names


def test_scan_sees_a_name_defined_twice(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("def load():\n    pass\n\n\nclass Thing:\n    def load(self):\n        pass\n")
    (pkg / "sub" / "b.py").write_text("async def load():\n    pass\n")
    found = top_level_names(pkg)
    assert found["load"] == ["pkg/a.py:1", "pkg/sub/b.py:1"]  # methods are not top-level names
    assert found["Thing"] == ["pkg/a.py:5"]


def test_no_two_functions_with_one_name():
    shared = {
        name: where
        for name, where in top_level_names(PACKAGE).items()
        if len(where) > 1 and name not in ENTRY_POINTS | KNOWN
    }
    assert not shared, "rename these to say which one they are:\n" + "\n".join(
        f"  {name}: {', '.join(where)}" for name, where in sorted(shared.items())
    )
