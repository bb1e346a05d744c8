"""Hydra search-path plugin: the project's own config tree ahead of the package's defaults.

    conf/experiment/nih_yolo12s.yaml  ->  python -m xray_exp.train experiment=nih_yolo12s
    conf/prepare/dataset/x.yaml       ->  python -m xray_exp.prepare dataset=x   (prepare's tree: conf/prepare)
    XRAY_EXP_CONF=/path/to/conf python -m xray_exp.evaluate ...   # another tree
    python -m xray_exp.train --info searchpath                    # provider xray-exp-user, before main

Hydra discovers it in every app of this environment; it acts only for an app whose primary config folder is
the package's (xray_exp/conf, or a folder in it), so every entry point of ours gets it, a new one included,
and no one else's app changes. The tree: xray_exp.project.user_conf_dir (conf/ of the project folder, or
$XRAY_EXP_CONF), the same layout as xray_exp/conf.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

PROVIDER = "xray-exp-user"


def package_conf_entry(search_path: ConfigSearchPath) -> tuple[str, Path] | None:
    """The search-path entry of the package's config folder or of a folder in it (given as a folder, as
    file://<folder> or as pkg://xray_exp.conf...) and its place under xray_exp/conf; None: not one of our apps."""
    from xray_exp import CONF_DIR

    for element in search_path.get_path():
        path = element.path
        for prefix in ("pkg://xray_exp.conf", "pkg://xray_exp/conf"):
            if path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "/"):
                return path, Path(*path[len(prefix) :].replace(".", "/").split("/"))
        folder = path.removeprefix("file://")
        if "://" in folder:
            continue
        folder_path = Path(folder).resolve()
        if folder_path == CONF_DIR or CONF_DIR in folder_path.parents:
            return path, folder_path.relative_to(CONF_DIR)
    return None


class XrayExpSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        entry = package_conf_entry(search_path)
        if entry is None:
            return
        from xray_exp.errors import XrayExpError
        from xray_exp.project import user_conf_dir

        try:
            tree = user_conf_dir()
        except XrayExpError as exc:  # Hydra calls plugins outside its error report: say it plainly, exit 2
            print(f"ERROR: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(exc.exit_code) from None
        anchor, place = entry
        if tree is not None and (tree / place).is_dir():
            search_path.prepend(PROVIDER, f"file://{tree / place}", anchor=SearchPathQuery(path=anchor))
