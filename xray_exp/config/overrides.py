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
from pathlib import Path

# Ultralytics' own `yolo train` names -> our keys (shared with the service); `data` also selects dataset=yolo
from xray_exp.override_shortcuts import SHORTCUTS

_PREFIXES = ("++", "+", "~")


def split_override(arg: str) -> tuple[str, str, str | None] | None:
    """`++train.epochs=3` -> ('++', 'train.epochs', '3'); `~tags` -> ('~', 'tags', None); flags -> None."""
    if arg.startswith("-") or ("=" not in arg and not arg.startswith("~")):
        return None
    prefix = next((p for p in _PREFIXES if arg.startswith(p)), "")
    body = arg[len(prefix):]
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
        for key in node.keys():
            path = f"{prefix}{key}"
            paths.add(path)
            child = node._get_node(key)
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
        score = max(difflib.SequenceMatcher(None, key, path).ratio(),
                    difflib.SequenceMatcher(None, leaf, path.rsplit(".", 1)[-1]).ratio())
        if score >= 0.75:
            scored.append((-score, path))
    return [path for _, path in sorted(scored)[:3]]


def unknown_key_errors(args: list[str], schema: type, conf_dir: Path) -> list[str]:
    """One message per override whose key is neither a schema key, a config group nor a shortcut."""
    paths, open_dicts = schema_key_paths(schema)
    known = paths | config_groups(conf_dir)
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
        hints = suggest(key, paths | {SHORTCUTS[k] for k in SHORTCUTS if k == key.split(".")[-1]})
        hint = f" (did you mean {' or '.join(hints)}?)" if hints else ""
        errors.append(f"unknown key '{key}' in '{arg}'{hint}. Fix: use the full key path, e.g. train.epochs=50, "
                      f"or a shortcut ({', '.join(SHORTCUTS)}); `--cfg job` prints every key.")
    return errors


def normalize_argv(schema: type, conf_dir: Path, argv: list[str] | None = None) -> list[str]:
    """Expand shortcuts in argv[1:] and exit 2 with a suggestion on an unknown key (before Hydra runs)."""
    argv = sys.argv if argv is None else argv
    args = expand_shortcuts(argv[1:])
    errors = unknown_key_errors(args, schema, conf_dir)
    if errors:
        for message in errors:
            print(f"ERROR: {message}", file=sys.stderr)
        sys.exit(2)
    return [argv[0], *args]
