"""Search space, searcher and scheduler for Ray Tune, from the `tune` block of the config.

    space:                                   # xray_exp/conf/tune/default.yaml; any key of the train config
      train:
        lr0: {type: loguniform, low: 1.0e-4, high: 5.0e-2}
        warmup_epochs: {type: quniform, low: 0.0, high: 3.0, q: 0.5}
      augmentation:
        mosaic: {type: choice, values: [0.0, 0.5, 1.0]}

Types: uniform, loguniform (low, high), quniform, qloguniform (low, high, q), int (low, high, both
inclusive; `log: true` for a log scale), choice (values). Each key is checked against the schema at start
(it must exist and take the distribution's values) so a typo fails before any trial runs.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from xray_exp.errors import ConfigError

TYPES = {
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "quniform": ("low", "high", "q"),
    "qloguniform": ("low", "high", "q"),
    "int": ("low", "high"),
    "choice": ("values",),
}
# Keys a trial may not change: where things go, how Ray and tracking run, and the ASHA time axis.
FORBIDDEN = (
    "paths",
    "ray",
    "tune",
    "tracking",
    "objective",
    "resume",
    "mode",
    "model_path",
    "run_name",
    "offline",
    "train.epochs",
)
# name -> (import name, pip package, module, class, extra constructor arguments)
SEARCHERS: dict[str, tuple[str, str, str, str, Any]] = {
    "optuna": ("optuna", "optuna", "ray.tune.search.optuna", "OptunaSearch", lambda seed, n: {"seed": seed}),
    "hyperopt": (
        "hyperopt",
        "hyperopt",
        "ray.tune.search.hyperopt",
        "HyperOptSearch",
        lambda seed, n: {"random_state_seed": seed},
    ),
    "bayesopt": (
        "bayes_opt",
        "bayesian-optimization",
        "ray.tune.search.bayesopt",
        "BayesOptSearch",
        lambda seed, n: {"random_state": 42 if seed is None else seed},
    ),
    "hebo": ("hebo", "HEBO", "ray.tune.search.hebo", "HEBOSearch", lambda seed, n: {"random_state_seed": seed}),
    "ax": ("ax", "ax-platform", "ray.tune.search.ax", "AxSearch", lambda seed, n: {}),
    "zoopt": ("zoopt", "zoopt", "ray.tune.search.zoopt", "ZOOptSearch", lambda seed, n: {"budget": n}),
}


def flatten_space(space: Mapping[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Nested `space` -> {'train.lr0': {'type': 'loguniform', 'low': ..., 'high': ...}, ...}."""
    if isinstance(space, DictConfig):  # a DictConfig's container is a dict with the config's str keys
        space = cast("dict[str, Any]", OmegaConf.to_container(space, resolve=True))
    flat: dict[str, dict[str, Any]] = {}
    for key, value in (space or {}).items():
        path = f"{prefix}{key}"
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"tune.space.{path}: expected a distribution like {{type: uniform, low: 0, high: 1}} "
                f"or a group of them, got {value!r}"
            )
        if "type" in value:
            flat[path] = dict(value)
        else:
            flat.update(flatten_space(value, f"{path}."))
    return flat


def check_distribution(key: str, dist: dict[str, Any]) -> None:
    kind = dist.get("type")
    if kind not in TYPES:
        raise ConfigError(f"tune.space.{key}.type: {kind!r} is not one of {', '.join(TYPES)}")
    allowed = set(TYPES[kind]) | {"type"} | ({"log"} if kind == "int" else set())
    missing = [a for a in TYPES[kind] if dist.get(a) is None]
    extra = sorted(set(dist) - allowed)
    if missing or extra:
        raise ConfigError(
            f"tune.space.{key}: {kind} needs {', '.join(TYPES[kind])}"
            + (f" (missing {', '.join(missing)})" if missing else "")
            + (f" (unknown {', '.join(extra)})" if extra else "")
        )
    if kind == "choice":
        if not isinstance(dist["values"], list) or not dist["values"]:
            raise ConfigError(f"tune.space.{key}.values: a non-empty list")
        return
    low, high = dist["low"], dist["high"]
    if not low < high:
        raise ConfigError(f"tune.space.{key}: low ({low}) must be below high ({high})")
    if kind in ("loguniform", "qloguniform") and low <= 0:
        raise ConfigError(f"tune.space.{key}: {kind} needs low > 0 (got {low})")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"tune.space.{key}: int bounds must be integers (got {low}, {high})")


def sample_values(dist: dict[str, Any]) -> list[Any]:
    """Values to try against the schema before any trial runs (all choices; both bounds otherwise)."""
    if dist["type"] == "choice":
        return list(dist["values"])
    if dist["type"] == "int":
        return [int(dist["low"]), int(dist["high"])]
    return [float(dist["low"]), float(dist["high"])]


def validate_space(cfg: DictConfig, flat: dict[str, dict[str, Any]]) -> None:
    """Every key exists in the config, may be searched, and accepts the distribution's values."""
    if not flat:
        raise ConfigError(
            "tune.space: empty. Fix: choose a search space (tune=default) or add keys, e.g. "
            "+tune.space.train.lr0={type:loguniform,low:1e-4,high:1e-1}"
        )
    for key, dist in flat.items():
        if any(key == f or key.startswith(f"{f}.") for f in FORBIDDEN):
            raise ConfigError(f"tune.space.{key}: cannot be searched (set by xray_exp or the time axis of ASHA)")
        check_distribution(key, dist)
        if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise ConfigError(f"tune.space.{key}: no such key in the train config (see --cfg job)")
        for value in sample_values(dist):
            try:
                apply_params(cfg, {key: value})
            except OmegaConfBaseException as exc:
                raise ConfigError(
                    f"tune.space.{key}: value {value!r} does not fit the config: {str(exc).splitlines()[0]}"
                ) from exc


_ABSENT = object()


def apply_params(cfg: DictConfig, params: Mapping[str, Any]) -> DictConfig:
    """A copy of `cfg` with each dotted key set (type-checked by the structured schema)."""
    out = cfg.copy()
    for key, value in params.items():
        OmegaConf.update(out, key, value, merge=False)
    return out


def to_tune_space(flat: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Flat keys -> Ray Tune sampling domains."""
    from ray import tune

    out: dict[str, Any] = {}
    for key, d in flat.items():
        kind = d["type"]
        if kind == "uniform":
            out[key] = tune.uniform(float(d["low"]), float(d["high"]))
        elif kind == "loguniform":
            out[key] = tune.loguniform(float(d["low"]), float(d["high"]))
        elif kind == "quniform":
            out[key] = tune.quniform(float(d["low"]), float(d["high"]), float(d["q"]))
        elif kind == "qloguniform":
            out[key] = tune.qloguniform(float(d["low"]), float(d["high"]), float(d["q"]))
        elif kind == "int":
            sampler = tune.lograndint if d.get("log") else tune.randint
            out[key] = sampler(int(d["low"]), int(d["high"]) + 1)  # Ray's upper bound is exclusive
        else:
            out[key] = tune.choice(list(d["values"]))
    return out


def installed_searchers() -> list[str]:
    return ["random"] + [n for n, spec in SEARCHERS.items() if importlib.util.find_spec(spec[0]) is not None]


def make_searcher(name: str, seed: int | None, max_concurrent: int, num_samples: int):
    """Optuna TPE by default; other Ray searchers when their package is installed; `random` needs none.

    Metric and mode come from the TuneConfig (Ray passes them on).
    """
    if name == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(max_concurrent=max_concurrent, random_state=seed)
    if name not in SEARCHERS:
        raise ConfigError(f"tune.searcher: {name!r} is not one of random, {', '.join(SEARCHERS)}")
    import_name, package, module, cls, extra = SEARCHERS[name]
    if importlib.util.find_spec(import_name) is None:
        raise ConfigError(
            f"tune.searcher={name} needs the Python package {package!r}, which is not installed "
            f"(pip install {package}). Installed here: {', '.join(installed_searchers())}."
        )
    from ray.tune.search import ConcurrencyLimiter

    searcher = getattr(importlib.import_module(module), cls)(**extra(seed, num_samples))
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


def make_scheduler(name: str, max_t: int, grace_period: int, reduction_factor: int):
    """ASHA on `epoch` (reported every epoch), or FIFO (every trial runs all epochs)."""
    if name == "fifo":
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()
    if name != "asha":
        raise ConfigError(f"tune.scheduler: {name!r} is not asha or fifo")
    if not 1 <= grace_period <= max_t:
        raise ConfigError(f"tune.grace_period: {grace_period} must be between 1 and train.epochs ({max_t})")
    if reduction_factor < 2:
        raise ConfigError(f"tune.reduction_factor: {reduction_factor} must be at least 2")
    from ray.tune.schedulers import ASHAScheduler

    # stop_last_trials=False: a trial that reaches the last epoch finishes its own training (final eval)
    return ASHAScheduler(
        time_attr="epoch",
        max_t=max_t,
        grace_period=grace_period,
        reduction_factor=reduction_factor,
        stop_last_trials=False,
    )
