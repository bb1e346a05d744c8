"""Where a project's outputs live (runs, the MLflow store, caches), for commands and notebooks alike.

    from xray_exp.project import project_root
    root = project_root()     # $XRAY_EXP_ROOT, else the folder above cwd holding outputs/ or xray_exp/conf
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root(start: str | Path | None = None) -> Path:
    """Where outputs/ lives: $XRAY_EXP_ROOT, else the first folder from `start` (default: cwd) upwards that
    holds outputs/ or a source checkout (xray_exp/conf/train.yaml; a notebook runs in notebooks/), else `start`."""
    if os.environ.get("XRAY_EXP_ROOT"):
        return Path(os.environ["XRAY_EXP_ROOT"]).expanduser().resolve()
    here = Path(start or Path.cwd()).expanduser().resolve()
    for folder in (here, *here.parents):
        if (folder / "outputs").is_dir() or (folder / "xray_exp" / "conf" / "train.yaml").is_file():
            return folder
    return here
