"""Command-line overrides the Ultralytics way: top-level shortcuts and "did you mean" for unknown keys.

    python -m xray_exp.train epochs=50 imgsz=640 batch=16 device=0 data=/data/data.yaml
    # = train.epochs=50 train.imgsz=640 hardware.batch=16 hardware.device=0 dataset=yolo dataset.data_yaml=...
    python -m xray_exp.train epoch=2
    # -> ERROR: unknown key 'epoch' (did you mean train.epochs?) ... exit 2

The entry points rewrite argv before Hydra parses it, so `--cfg job` shows the namespaced keys. Standard
library + omegaconf only: start-up stays light.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from xray_exp.config.omegaconf_compat import child_node
from xray_exp.config.override_shortcuts import (
    SHORTCUTS,
)  # Ultralytics' `yolo train` names -> our keys (also the service's)
from xray_exp.errors import XrayExpError
from xray_exp.project import user_conf_dir

_PREFIXES = ("++", "+", "~")


def split_override(arg: str) -> tuple[str, str, str | None] | None:
    """`++train.epochs=3` -> ('++', 'train.epochs', '3'); `~tags` -> ('~', 'tags', None); flags -> None."""
    if arg.startswith("-") or ("=" not in arg and not arg.startswith("~")):
        return None
    prefix = next((p for p in _PREFIXES if arg.startswith(p)), "")
    body = arg[len(prefix) :]
    key, sep, value = body.partition("=")
    return prefix, key, value if sep else None


def expand_shortcuts(args: list[str]) -> list[str]:
    """`epochs=50` -> `train.epochs=50`; `data=X` -> `dataset=yolo dataset.data_yaml=X` (unless a
    dataset group is chosen too). Other arguments pass unchanged, in order."""
    parsed = [split_override(a) for a in args]
    dataset_chosen = any(p and p[1] == "dataset" for p in parsed)
    out: list[str] = []
    for arg, p in zip(args, parsed, strict=True):
        if p is None or p[1] not in SHORTCUTS or p[2] is None:
            out.append(arg)
            continue
        prefix, key, value = p
        if key == "data" and not dataset_chosen:
            out.append("dataset=yolo")
        out.append(f"{prefix}{SHORTCUTS[key]}={value}")
    return out


def schema_key_paths(schema: type) -> tuple[set[str], set[str]]:
    """(every full key path of the structured schema, the paths whose node is a free-form dict)."""
    from omegaconf import DictConfig, OmegaConf

    paths: set[str] = set()
    open_dicts: set[str] = set()

    def walk(node: DictConfig, prefix: str) -> None:
        for key in map(str, node.keys()):  # a structured schema's keys are field names
            path = f"{prefix}{key}"
            paths.add(path)
            child = child_node(node, key)
            if isinstance(child, DictConfig):
                if OmegaConf.get_type(child) is dict:
                    open_dicts.add(path)
                else:
                    walk(child, f"{path}.")

    walk(OmegaConf.structured(schema), "")
    return paths, open_dicts


def config_groups(conf_dir: Path) -> set[str]:
    """The config group names (folders of the config dir): `model`, `dataset`, `sweep`, ..."""
    return {p.name for p in conf_dir.iterdir() if p.is_dir()}


def suggest(key: str, candidates: set[str]) -> list[str]:
    """Closest full key paths to `key`: by the whole path and by its last part (`epoch` -> train.epochs)."""
    leaf = key.rsplit(".", 1)[-1]
    scored = []
    for path in candidates:
        score = max(
            difflib.SequenceMatcher(None, key, path).ratio(),
            difflib.SequenceMatcher(None, leaf, path.rsplit(".", 1)[-1]).ratio(),
        )
        if score >= 0.75:
            scored.append((-score, path))
    return [path for _, path in sorted(scored)[:3]]


def unknown_key_errors(
    args: list[str], schema: type, conf_dir: Path, extra_dirs: Sequence[Path] = (), shortcuts: bool = True
) -> list[str]:
    """One message per override whose key is neither a schema key, a config group (of `conf_dir` or of the
    user's trees `extra_dirs`) nor a shortcut (with `shortcuts`, the training apps)."""
    paths, open_dicts = schema_key_paths(schema)
    known = paths.union(*(config_groups(d) for d in (conf_dir, *extra_dirs) if d.is_dir()))
    errors = []
    for arg in args:
        p = split_override(arg)
        if p is None:
            continue
        key = p[1]
        if key == "hydra" or key.startswith("hydra.") or "/" in key or "@" in key or key in known:
            continue
        if any(key.startswith(f"{d}.") for d in open_dicts):
            continue
        hints = suggest(key, paths | {SHORTCUTS[k] for k in SHORTCUTS if k == key.split(".")[-1] and shortcuts})
        hint = f" (did you mean {' or '.join(hints)}?)" if hints else ""
        fix = (
            f"use the full key path, e.g. train.epochs=50, or a shortcut ({', '.join(SHORTCUTS)}); "
            if shortcuts
            else ""
        )
        errors.append(f"unknown key '{key}' in '{arg}'{hint}. Fix: {fix}`--cfg job` prints every key.")
    return errors


def user_trees(args: list[str]) -> list[Path]:
    """The user's config trees beside the package's: the project's conf/ (or $XRAY_EXP_CONF; Hydra searches it
    through hydra_plugins/xray_exp_searchpath) and Hydra's --config-dir / -cd."""
    tree = user_conf_dir()
    trees = [tree] if tree is not None else []
    for i, flag in enumerate(args):
        value = args[i + 1] if i + 1 < len(args) else ""
        if flag.startswith("--config-dir="):
            trees.append(Path(flag.split("=", 1)[1]))
        elif flag in ("--config-dir", "-cd") and value:
            trees.append(Path(value))
    return trees


def normalize_argv(schema: type, conf_dir: Path, argv: list[str] | None = None, shortcuts: bool = True) -> list[str]:
    """Expand shortcuts in argv[1:] (unless `shortcuts` is False: apps whose own keys are called batch, imgsz,
    ...) and exit 2 with a suggestion on an unknown key (before Hydra runs)."""
    argv = sys.argv if argv is None else argv
    args = expand_shortcuts(argv[1:]) if shortcuts else list(argv[1:])
    try:
        errors = unknown_key_errors(args, schema, conf_dir, user_trees(args), shortcuts)
    except XrayExpError as exc:
        errors = [str(exc)]
    if errors:
        for message in errors:
            print(f"ERROR: {message}", file=sys.stderr)
        sys.exit(2)
    return [argv[0], *args]
