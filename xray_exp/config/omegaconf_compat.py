"""The one module that touches omegaconf's private names.

    from xray_exp.config.omegaconf_compat import child_node
    child_node(OmegaConf.structured(TrainAppConfig), "train")   # the DictConfig node, nothing resolved

Checked against omegaconf 2.4.1rc1 (pinned in pyproject.toml). tests/package/test_compat_omegaconf.py fails,
naming what changed, when an upgrade renames `_get_node` or changes its signature or behaviour;
tests/package/test_compat_scan.py fails when a module outside the compat modules uses it (PRIVATE_NAMES).
"""

from __future__ import annotations

from omegaconf import DictConfig
from omegaconf.base import Node

CHECKED_VERSION = "2.4.1rc1"
# omegaconf's private names used here, and only here (tests/package/test_compat_scan.py).
PRIVATE_NAMES = frozenset({"_get_node"})
# The modules those names live in: pytest fails on a DeprecationWarning raised there (pyproject.toml).
INTERNAL_MODULES = ("omegaconf.dictconfig",)


def child_node(node: DictConfig, key: str) -> Node | None:
    """The node stored under `key` itself: a DictConfig for a nested (structured or free-form) config, a value
    node for a leaf. An unknown key: omegaconf's ConfigAttributeError in a structured config, None in a
    free-form one. Nothing is resolved: a MISSING (`???`) leaf or an
    interpolation is returned as its node, where `node[key]` would raise or resolve.

    Checked against omegaconf 2.4.1rc1: relies on `DictConfig._get_node(key, validate_access=True,
    validate_key=True, throw_on_missing_value=False, throw_on_missing_key=False)` returning the child `Node`
    (or None) without resolving it. omegaconf has no public accessor that does not resolve.
    """
    child = node._get_node(key)
    if isinstance(child, list):  # only a ListConfig indexed by a slice returns a list
        raise TypeError(f"{key!r} selects several nodes")
    return child
