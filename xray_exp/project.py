"""Where a project's outputs live (runs, the MLflow store, caches) and its own configs, for commands and
notebooks alike.

    from xray_exp.project import project_root, user_conf_dir
    root = project_root()     # $XRAY_EXP_ROOT, else the folder above cwd holding outputs/ or xray_exp/conf
    user_conf_dir()           # $XRAY_EXP_CONF, else <root>/conf when it exists (conf/README.md), else None
"""

from __future__ import annotations

import os
from pathlib import Path

from xray_exp.errors import ConfigError


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


USER_CONF_ENV = "XRAY_EXP_CONF"


def user_conf_dir(start: str | Path | None = None) -> Path | None:
    """The project's own config tree, searched by every entry point ahead of the package's (xray_exp/conf):
    $XRAY_EXP_CONF (which must be a folder), else `<project_root()>/conf` when there is one, else None."""
    value = os.environ.get(USER_CONF_ENV)
    if value:
        folder = Path(value).expanduser().resolve()
        if not folder.is_dir():
            raise ConfigError(
                f"{USER_CONF_ENV}={value}: no such folder. Fix: point it at your config tree "
                "(a folder holding e.g. experiment/ and dataset/), or unset it"
            )
        return folder
    folder = project_root(start) / "conf"
    return folder if folder.is_dir() else None
