"""Which Hydra overrides a client may send with /trigger-training and /trigger-finetune: an allow-list.

    validate_overrides(["debug=smoke", "train.epochs=5", "hardware=gpu"])   # -> the same list
    validate_overrides(["paths.output_dir=/etc"])   # ValueError: override 'paths.output_dir=/etc' sets ...

Allowed: the choice of a config group (`dataset=`, `augmentation=`, `hardware=`, `experiment=`, `debug=`),
`tracking=disabled` and the training hyperparameters (`train.*`, `augmentation.*`, `hardware.*`,
`dataset.synthetic.*`, `post.*`, `objective.*`). Everything else is refused with the key named, in
particular what the service sets itself: `mode`, `model` (the request's `model` field), `paths.*`,
`tracking.*` (the registry is the service's), `model.*` (weights come from the registry), `hydra.*`,
`dataset.data_yaml`, `train.extra.*` (raw Ultralytics arguments: project/save_dir), `run_name`, `resume`.
The CLI's Ultralytics-style shortcuts are expanded first: `epochs=2` is `train.epochs=2` (config/override_shortcuts.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from xray_exp.config.override_shortcuts import SHORTCUTS

# key=value, Hydra dotted keys; values without spaces, quotes, $ or braces (no ${oc.env:...} interpolation)
OVERRIDE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]*=[A-Za-z0-9_.,:/@+\-]*$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
MAX_OVERRIDES = 32
GROUP_CHOICES = ("dataset", "augmentation", "hardware", "experiment", "debug")
TRACKING_OFF = "tracking=disabled"  # the one tracking choice a client makes: no MLflow run, no registration
CHOICE_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")  # a config file name: no '/', no '..'
HYPERPARAMETER_PREFIXES = ("train.", "augmentation.", "hardware.", "dataset.synthetic.", "post.", "objective.")
REFUSED_PREFIXES = {  # checked before the allowed prefixes: why each family is the service's
    "train.extra": "raw Ultralytics arguments (output folders) are the service's",
    "paths": "output and cache folders are the service's",
    "tracking": "the tracking server and registry are the service's",
    "model": "the model comes from the request's `model` field and its weights from the registry",
    "hydra": "Hydra's own settings (run dir, launcher) stay as configured",
    "dataset.data_yaml": "a dataset is chosen by name (dataset=...), not by a path",
}


def refusal(key: str) -> str | None:
    """Why `key` may not be set by a client, or None when it is on the allow-list."""
    for prefix, why in REFUSED_PREFIXES.items():
        if key == prefix or key.startswith(prefix + "."):
            return why
    if key in GROUP_CHOICES or key.startswith(HYPERPARAMETER_PREFIXES):
        return None
    if key in ("mode",):
        return "the service decides between training and fine-tuning"
    return (
        f"not a training choice or hyperparameter (allowed: {', '.join(GROUP_CHOICES)}=<name> and "
        f"{', '.join(p + '*' for p in HYPERPARAMETER_PREFIXES)})"
    )


def validate_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides with the CLI's shortcuts expanded (`epochs=2` -> `train.epochs=2`, as `python -m
    xray_exp.train` does) if each is a safe, allowed `key=value`; ValueError naming the first refused key."""
    if len(overrides) > MAX_OVERRIDES:
        raise ValueError(f"at most {MAX_OVERRIDES} overrides")
    expanded = []
    for item in overrides:
        if not isinstance(item, str) or not re.match(OVERRIDE_PATTERN, item) or len(item) > 200:
            raise ValueError(f"override {item!r} is not key=value with characters [A-Za-z0-9_.,:/@+-]")
        key, value = item.split("=", 1)
        if key in SHORTCUTS:
            key = SHORTCUTS[key]
            item = f"{key}={value}"
        expanded.append(item)
        why = None if item == TRACKING_OFF else refusal(key)
        if why:
            raise ValueError(f"override {item!r} sets {key!r}, which is refused: {why}")
        if key in GROUP_CHOICES and not CHOICE_VALUE.match(value):
            raise ValueError(f"override {item!r}: {key} takes a config name ([A-Za-z0-9_-], no path)")
    return expanded
