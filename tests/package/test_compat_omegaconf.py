"""What xray_exp/config/omegaconf_compat.py relies on in omegaconf is still there: a changed internal fails
here, by name, instead of as a wrong "did you mean" at the command line.

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/package/test_compat_omegaconf.py -q
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError

try:
    from compat_modules import private
except ImportError:  # tests/ imported as a package
    from tests.package.compat_modules import private

from xray_exp.config.omegaconf_compat import child_node

COMPAT = "config/omegaconf_compat.py"


@dataclass
class Inner:
    epochs: int = 3


@dataclass
class Outer:
    name: str = MISSING
    alias: str = "${name}"
    inner: Inner = field(default_factory=Inner)
    extra: dict[str, Any] = field(default_factory=dict)


def test_get_node_exists_with_its_signature():
    private(
        DictConfig,
        "_get_node",
        "(self, key, validate_access=True, validate_key=True, throw_on_missing_value=False, "
        "throw_on_missing_key=False)",
        COMPAT,
    )


def test_child_node_returns_nodes_unresolved():
    """A MISSING leaf and an interpolation come back as nodes (`cfg[key]` raises or resolves); a nested
    structured config and a free-form dict as DictConfig nodes; an unknown key is an error in a structured
    config, None in a free-form one."""
    cfg = OmegaConf.structured(Outer)
    assert OmegaConf.is_missing(cfg, "name")  # cfg["name"] would raise MissingMandatoryValue
    assert str(child_node(cfg, "name")) == "???"
    assert str(child_node(cfg, "alias")) == "${name}"
    inner = child_node(cfg, "inner")
    assert isinstance(inner, DictConfig) and OmegaConf.get_type(inner) is Inner
    extra = child_node(cfg, "extra")
    assert isinstance(extra, DictConfig) and OmegaConf.get_type(extra) is dict
    with pytest.raises(ConfigAttributeError, match="nope"):
        child_node(cfg, "nope")
    assert child_node(OmegaConf.create({"a": 1}), "nope") is None


def test_schema_key_paths_walks_a_real_schema():
    """The one caller (did-you-mean of the overrides) through the compat accessor, on the training schema."""
    from xray_exp.config.overrides import schema_key_paths
    from xray_exp.config.schema import TrainConfig

    paths, _ = schema_key_paths(TrainConfig)
    assert {"train.epochs", "hardware.batch", "model.arch"} <= paths
