"""The compat modules (one per outside library whose private names we use) and what each declares, read from
the source (ast), so the checks need neither the library nor its import time.

    from compat_modules import COMPAT, declared
    declared("yolo/ultralytics_compat.py", "PRIVATE_NAMES")   # frozenset({'_setup_ddp', ...})
"""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[2] / "xray_exp"

# compat module (relative to the package) -> the distribution whose internals it reaches into
COMPAT = {
    "yolo/ultralytics_compat.py": "ultralytics",
    "config/omegaconf_compat.py": "omegaconf",
    "distributed/ray_compat.py": "ray",
    "imaging/pydicom_compat.py": "pydicom",
}


def declared(relative: str, name: str, package: Path = PACKAGE) -> Any:
    """The literal value of the module-level assignment `name = ...` in the compat module `relative`."""
    tree = ast.parse((package / relative).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = node.value
            if isinstance(value, ast.Call) and ast.unparse(value.func) == "frozenset":  # frozenset({...})
                return frozenset(ast.literal_eval(value.args[0]))
            return ast.literal_eval(value)
    raise AssertionError(f"xray_exp/{relative} declares no {name}")


def shape(function: Any) -> str:
    """A signature without annotations, `(self, key, validate_access=True)`: what a caller depends on."""
    signature = inspect.signature(function)
    return str(
        signature.replace(
            parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
            return_annotation=signature.empty,
        )
    )


def private(owner: Any, name: str, expected: str, compat: str) -> Any:
    """`owner.name`, asserted to exist with the parameters `expected`; a failure says which library version
    changed what, and where our use of it lives."""
    library = COMPAT[compat]
    installed = importlib.metadata.version(library)
    checked = declared(compat, "CHECKED_VERSION")
    where = owner.__name__ if inspect.ismodule(owner) else f"{owner.__module__}.{owner.__qualname__}"
    fix = f"Fix: adapt xray_exp/{compat} to {library} {installed}, re-check its docstrings, set CHECKED_VERSION"
    value = getattr(owner, name, None)
    assert value is not None, (
        f"{library} {installed} (xray_exp/{compat} was checked against {checked}) has no {where}.{name}. {fix}"
    )
    found = shape(value)
    assert found == expected, (
        f"{library} {installed} (checked against {checked}) changed {where}.{name}: {found}, expected {expected}. {fix}"
    )
    return value
