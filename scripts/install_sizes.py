"""Installed size of each install role, from the distributions of this environment (their RECORD files).

    .venv/bin/python scripts/install_sizes.py            # research workstation, trainer, serving host (MiB)

A role is xray_exp's base dependencies plus its extras, closed over every dependency's own requirements
(markers evaluated for this interpreter). The figures are for this environment's builds (the CPU torch
wheel here; the CUDA build adds its nvidia-* wheels). README "Install" quotes them.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
ROLES = {"research workstation": ("train", "serve", "dev"), "trainer": ("train",), "serving host": ("serve",)}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_size(dist) -> int:
    total = 0
    for f in dist.files or []:
        if f.size:
            total += int(f.size)
    return total


def closure(requirements: list[str]) -> dict[str, int]:
    """{distribution: bytes} for the requirements and everything they require."""
    sizes: dict[str, int] = {}
    todo = [(Requirement(r), ()) for r in requirements]
    while todo:
        req, extras = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or ("",))):
            continue
        name = canonical(req.name)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            print(f"  (not installed here: {req.name})", file=sys.stderr)
            continue
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in sizes or (name in sizes and not req.extras):
            continue
        sizes.setdefault(name, dist_size(dist))
        sizes[key] = 0
        todo += [(Requirement(r), tuple(req.extras)) for r in dist.requires or []]
    return {k: v for k, v in sizes.items() if "[" not in k}


def main() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for role, extras in ROLES.items():
        reqs = list(project["dependencies"]) + [r for e in extras for r in project["optional-dependencies"][e]]
        sizes = closure(reqs)
        top = sorted(sizes.items(), key=lambda kv: -kv[1])[:4]
        print(
            f"{role:<22} xray_exp[{','.join(extras)}]: {sum(sizes.values()) / 2**20:7.0f} MiB in "
            f"{len(sizes)} distributions (largest: {', '.join(f'{k} {v / 2**20:.0f}' for k, v in top)})"
        )


if __name__ == "__main__":
    main()
