"""Reproducibility tags of every MLflow run: git commit + dirty flag, Hydra overrides, package versions, host;
and the config flattened into MLflow params.

    tags = run_tags(root, overrides, {"mode": "train"})    # git.commit, git.dirty, hydra.overrides, version.*, host
    params = flatten({"train": {"epochs": 30}})             # {"train.epochs": "30"}
"""

from __future__ import annotations

import platform
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PACKAGES = (
    "torch",
    "torchvision",
    "ultralytics",
    "mlflow",
    "hydra-core",
    "omegaconf",
    "onnx",
    "onnxruntime",
    "numpy",
    "opencv-python",
    "ray",
)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}; lists become their repr. MLflow params are strings."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def git_info(root: str | Path) -> dict[str, str]:
    """The commit and whether the work tree has uncommitted changes ('unknown' outside a git repo)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git.commit": "unknown", "git.dirty": "unknown"}
    return {"git.commit": commit, "git.dirty": str(dirty).lower()}


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"version.python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[f"version.{name}"] = version(name)
        except PackageNotFoundError:
            pass
    return out


def run_tags(root: str | Path, overrides: Iterable[str], extra: dict[str, str] | None = None) -> dict[str, str]:
    """Reproducibility tags: git commit + dirty flag, Hydra overrides, package versions, host."""
    return {
        **git_info(root),
        "hydra.overrides": " ".join(overrides) or "(none)",
        **package_versions(),
        "host": socket.gethostname(),
        **(extra or {}),
    }
