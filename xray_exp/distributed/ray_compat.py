"""The one module that touches Ray's private names.

    from xray_exp.distributed.ray_compat import reload_ray_config
    os.environ["RAY_AUTH_MODE"] = "token"
    reload_ray_config()   # a Ray imported earlier in this process reads the variable again

Checked against ray 2.60.0 (pinned in pyproject.toml). tests/package/test_compat_ray.py fails, naming what
changed, when an upgrade moves or changes what is used here; tests/package/test_compat_scan.py fails when a
module outside the compat modules uses a private name of Ray (PRIVATE_NAMES). Ray itself is imported only
when it already is: this module stays cheap for the service.
"""

from __future__ import annotations

import sys

CHECKED_VERSION = "2.60.0"
# Ray's private names used here, and only here (tests/package/test_compat_scan.py).
PRIVATE_NAMES = frozenset({"_raylet"})
# The modules those names live in: pytest fails on a DeprecationWarning raised there (pyproject.toml).
INTERNAL_MODULES = ("ray._raylet",)


def reload_ray_config() -> bool:
    """Make an already imported Ray read its `RAY_*` environment variables (RAY_AUTH_MODE, ...) again; False
    (nothing to do) when Ray is not imported yet: it reads them at import.

    Checked against ray 2.60.0: relies on `ray._raylet.Config.initialize(config_list: str)` re-reading the
    environment into Ray's process-wide RayConfig ("" = no extra settings), as Ray's own
    `ray._private.authentication.authentication_token_setup` does after it sets RAY_AUTH_MODE. Ray has no
    public call for it.
    """
    if "ray._raylet" not in sys.modules:
        return False
    from ray._raylet import Config  # type: ignore[attr-defined]  # not in ray 2.60.0's _raylet.pyi

    Config.initialize("")
    return True
