"""What xray_exp/distributed/ray_compat.py relies on in Ray is still there: a changed internal fails here, by
name, instead of as a driver that connects without its token.

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/package/test_compat_ray.py -q
"""

from __future__ import annotations

import os
import subprocess
import sys

try:
    from compat_modules import private
except ImportError:  # tests/ imported as a package
    from tests.package.compat_modules import private

COMPAT = "distributed/ray_compat.py"

# In a fresh process (Ray's config is process-wide): RAY_AUTH_MODE set after the import is seen only after
# reload_ray_config(); before the import there is nothing to reload.
CHILD = """
import os, sys
from xray_exp.distributed.ray_compat import reload_ray_config
assert reload_ray_config() is False and "ray" not in sys.modules
from ray._raylet import AuthenticationMode, get_authentication_mode
os.environ["RAY_AUTH_MODE"] = "token"
before = get_authentication_mode()
assert reload_ray_config() is True
print(before == AuthenticationMode.DISABLED, get_authentication_mode() == AuthenticationMode.TOKEN)
"""


def test_config_initialize_exists_with_its_signature():
    from ray import _raylet

    private(_raylet.Config, "initialize", "(config_list)", COMPAT)


def test_reload_makes_an_imported_ray_read_the_environment_again():
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "True"], (
        f"ray: RAY_AUTH_MODE before/after Config.initialize('') not seen as expected: {proc.stdout}{proc.stderr[-500:]}"
    )
