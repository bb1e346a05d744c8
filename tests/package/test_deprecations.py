"""pyproject's pytest filterwarnings: a DeprecationWarning raised from our own code fails the test, another
library's is ignored (theirs to fix; pinned versions move only with constraints.txt).

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/package/test_deprecations.py -q
"""

from __future__ import annotations

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
