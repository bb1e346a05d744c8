"""pyproject's pytest filterwarnings: a DeprecationWarning raised from our own code fails the test, another
library's is ignored (theirs to fix; pinned versions move only with constraints.txt).

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/package/test_deprecations.py -q
"""

from __future__ import annotations

import io
import warnings

import pytest


def warner(module: str, category: type[Warning]):
    """A function whose warning Python attributes to `module` (as when code of that module calls warnings.warn)."""
    namespace = {"__name__": module}
    exec(f"import warnings\ndef warn():\n    warnings.warn('old API', {category.__name__})\n", namespace)
    return namespace["warn"]


@pytest.mark.parametrize("module", ["xray_exp.metrics.ap", "xray_exp", "hydra_plugins.xray_exp_searchpath.plugin"])
@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_our_deprecation_warnings_fail(module, category):
    with pytest.raises(category, match="old API"):
        warner(module, category)()


@pytest.mark.parametrize("module", ["ultralytics.utils", "hydra.core.utils", "pydicom.dataset"])
def test_other_libraries_deprecation_warnings_do_not(module):
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", category=UserWarning)  # the recorder works: a warning that is not filtered
        warner(module, DeprecationWarning)()
        warner(module, UserWarning)()
    assert [w.category for w in caught] == [UserWarning]


def internal_modules() -> list[str]:
    """The library modules whose private names the compat modules use (their INTERNAL_MODULES)."""
    try:
        from compat_modules import COMPAT, declared
    except ImportError:  # tests/ imported as a package
        from tests.package.compat_modules import COMPAT, declared
    return sorted(m for relative in COMPAT for m in declared(relative, "INTERNAL_MODULES"))


@pytest.mark.parametrize("module", internal_modules())
def test_deprecation_warnings_inside_the_internals_we_use_fail(module):
    """Every compat module's INTERNAL_MODULES is in pyproject's filterwarnings as an error."""
    with pytest.raises(DeprecationWarning, match="old API"):
        warner(module, DeprecationWarning)()


def private_function(module: str, stacklevel: int):
    """A stand-in for a private function of `module` that warns (stacklevel 1: the warning is attributed to
    `module`; 2: to its caller, as libraries usually warn)."""
    namespace = {"__name__": module}
    exec(
        "import warnings\n"
        "def private(fp):\n"
        f"    warnings.warn('old API', DeprecationWarning, stacklevel={stacklevel})\n",
        namespace,
    )
    return namespace["private"]


@pytest.mark.parametrize(
    ("module", "stacklevel", "fails"),
    [
        ("pydicom.filereader", 1, True),  # raised in the private function's own module
        ("pydicom.filereader", 2, True),  # attributed to its caller, our compat module
        ("pydicom.values", 1, False),  # raised deeper in pydicom (attributed there): not caught
    ],
)
def test_a_deprecation_inside_a_compat_call(monkeypatch, module, stacklevel, fails):
    from pydicom import filereader

    from xray_exp.imaging.pydicom_compat import read_file_meta

    monkeypatch.setattr(filereader, "_read_file_meta_info", private_function(module, stacklevel))
    if fails:
        with pytest.raises(DeprecationWarning, match="old API"):
            read_file_meta(io.BytesIO())
    else:
        with warnings.catch_warnings(record=True) as caught:
            read_file_meta(io.BytesIO())
        assert caught == []
