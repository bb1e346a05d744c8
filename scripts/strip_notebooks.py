#!/usr/bin/env python3
"""Strip outputs and execution counts from Jupyter notebooks before they are committed.

    python scripts/strip_notebooks.py                  # every notebooks/**/*.ipynb, in place
    python scripts/strip_notebooks.py --check          # list notebooks that still have outputs; exit 1 if any
    python scripts/strip_notebooks.py path/a.ipynb ... # only these files

Clears code-cell outputs and execution counts, per-cell execution timing metadata and the notebook's
widget state and language version; keeps cell tags (the `parameters` cell) and the kernelspec. Files are
written the way nbformat writes them (sorted keys, one-space indent), so a stripped notebook reopened and
saved by Jupyter without running it does not change. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CELL_METADATA_NOISE = ("execution", "collapsed", "scrolled", "ExecuteTime")
NOTEBOOK_METADATA_NOISE = ("widgets", "varInspector", "toc")


def find_notebooks(paths: list[str] | None = None) -> list[Path]:
    """The given files, or every notebook under notebooks/ (checkpoints left out)."""
    if paths:
        return [Path(p) for p in paths]
    return sorted(p for p in (REPO / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def problems(nb: dict) -> list[str]:
    """What a committed notebook must not carry: outputs and execution counts, per cell."""
    found = []
    for k, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {k}: {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            found.append(f"cell {k}: execution_count {cell['execution_count']}")
    return found


def strip(nb: dict) -> dict:
    """The notebook without outputs, execution counts and run-specific metadata (modified in place)."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        for key in CELL_METADATA_NOISE:
            cell.get("metadata", {}).pop(key, None)
    meta = nb.get("metadata", {})
    for key in NOTEBOOK_METADATA_NOISE:
        meta.pop(key, None)
    if isinstance(meta.get("language_info"), dict):
        meta["language_info"] = {"name": meta["language_info"].get("name", "python")}
    return nb


def dumps(nb: dict) -> str:
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False, separators=(",", ": ")) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Strip outputs and execution counts from notebooks.")
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/**/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any notebook has outputs")
    args = parser.parse_args(argv)
    dirty = 0
    for path in find_notebooks(args.paths):
        text = path.read_text(encoding="utf-8")
        nb = json.loads(text)
        found = problems(nb)
        if args.check:
            if found:
                dirty += 1
                print(f"{path}: {'; '.join(found[:5])}{' ...' if len(found) > 5 else ''}")
            continue
        clean = dumps(strip(nb))
        if clean != text:
            path.write_text(clean, encoding="utf-8")
            print(f"stripped {path}")
    if args.check and dirty:
        print(f"{dirty} notebook(s) have outputs: run python scripts/strip_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
