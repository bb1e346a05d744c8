"""Private names of other libraries are used in their compat module only (tests/package/compat_modules.py).

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/package/test_compat_scan.py -q

Read from the source (ast). Outside the compat modules, a module of the package may not
- name one of the private names a compat module declares (PRIVATE_NAMES): as an attribute, a name, an import,
  a method it overrides, or a string such as a plugin's ("module", "_function") pair;
- import a private module or name of another library (`ray._raylet`, `from pydicom.filereader import _x`);
- reach a private attribute (`study._storage`, `super()._setup_train()`) that is not one the package defines;
- assign to an attribute of another library's module (a process-wide patch), `sys.argv` excepted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

try:
    from compat_modules import COMPAT, PACKAGE, declared
except ImportError:  # tests/ imported as a package
    from tests.package.compat_modules import COMPAT, PACKAGE, declared

OURS = ("xray_exp", "hydra_plugins")
# documented public API despite the underscore: os._exit (a forked worker's exit), namedtuple's methods
PUBLIC_UNDERSCORED = {"_exit", "_replace", "_asdict", "_fields", "_make"}
PATCHABLE = {"sys.argv"}  # entry points hand Hydra its argv
# the node types that can spell a name, import or patch (the rest, most of a tree, is skipped)
RELEVANT = {
    ast.Attribute,
    ast.Name,
    ast.alias,
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.keyword,
    ast.Constant,
    ast.Assign,
    ast.Module,
}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _docstrings(nodes: list[ast.AST]) -> set[int]:
    found = set()
    for node in nodes:
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _names(node: ast.AST, docstrings: set[int]) -> list[str]:
    """The identifiers a node spells: attribute, name, import, definition, keyword, dotted string parts."""
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.alias):
        return [*node.name.split("."), *([node.asname] if node.asname else [])]
    if isinstance(node, ast.ImportFrom) and node.module:
        return node.module.split(".")
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.keyword) and node.arg:
        return [node.arg]
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
        return node.value.split(".") if " " not in node.value else []
    return []


def _outside_modules(node: ast.AST) -> list[tuple[str, list[str]]]:
    """(module, imported names) of an import of something not ours."""
    if isinstance(node, ast.Import):
        return [(a.name, []) for a in node.names if not a.name.startswith(OURS)]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and not node.module.startswith(OURS):
        return [(node.module, [a.name for a in node.names])]
    return []


def _defined(modules: dict[str, list[ast.AST]]) -> set[str]:
    """Names the package defines itself: functions, classes, assignment targets (`obj._mark = ...` included)."""
    found = set()
    for nodes in modules.values():
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                found.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                found.add(node.attr)
    return found


def _methods(nodes: list[ast.AST]) -> dict[str, set[str]]:
    """method name -> the classes of this module that define it"""
    found: dict[str, set[str]] = {}
    for cls in nodes:
        if isinstance(cls, ast.ClassDef):
            for item in cls.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.setdefault(item.name, set()).add(cls.name)
    return found


def violations(package: Path, compat: dict[str, str]) -> list[str]:
    """`path:line: what` of every use of another library's private names outside the compat modules."""
    known = {
        name: library for relative, library in compat.items() for name in declared(relative, "PRIVATE_NAMES", package)
    }
    outside = {
        p.relative_to(package).as_posix(): [
            n for n in ast.walk(ast.parse(p.read_text(), filename=str(p))) if type(n) in RELEVANT
        ]
        for p in sorted(package.rglob("*.py"))
        if p.relative_to(package).as_posix() not in compat
    }
    ours = _defined(outside)
    methods: dict[str, set[str]] = {}
    for nodes in outside.values():
        for name, classes in _methods(nodes).items():
            methods.setdefault(name, set()).update(classes)
    found = []
    for relative, nodes in outside.items():
        docstrings = _docstrings(nodes)
        modules = {  # local name -> the outside module it is bound to by `import`
            alias.asname or alias.name.split(".")[0]: alias.name
            for node in nodes
            if isinstance(node, ast.Import)
            for alias in node.names
            if not alias.name.startswith(OURS)
        }
        for node in nodes:
            where = f"{relative}:{getattr(node, 'lineno', '?')}"
            for name in _names(node, docstrings):
                if name in known:
                    found.append(f"{where}: {name} of {known[name]} (use its compat module)")
            for module, names in _outside_modules(node):
                bad = [part for part in module.split(".")[1:] + names if _private(part)]
                if bad:
                    found.append(f"{where}: private import {module} {bad}")
            if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in PUBLIC_UNDERSCORED:
                value = node.value
                if isinstance(value, ast.Name) and value.id in ("self", "cls"):
                    continue
                if isinstance(value, ast.Call) and ast.unparse(value.func) == "super":
                    if len(methods.get(node.attr, ())) < 2:  # defined by no other class of ours: a library's
                        found.append(f"{where}: super().{node.attr} (a private method of a base class not ours)")
                elif node.attr not in ours:
                    found.append(f"{where}: private attribute {ast.unparse(node)}")
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                root = target
                while isinstance(root, ast.Attribute):
                    root = root.value
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(root, ast.Name)
                    and root.id in modules
                    and ast.unparse(target) not in PATCHABLE
                ):
                    found.append(f"{where}: patches {ast.unparse(target)} of {modules[root.id]}")
    return sorted(set(found))


def test_private_names_of_other_libraries_stay_in_their_compat_module():
    found = violations(PACKAGE, COMPAT)
    assert not found, "private names of other libraries outside the compat modules:\n" + "\n".join(found)


@pytest.mark.parametrize("relative", sorted(COMPAT))
def test_each_declared_private_name_is_used_by_its_compat_module(relative):
    """PRIVATE_NAMES is not stale: each name is spelled in the module that declares it (besides the declaration)."""
    tree = ast.parse((PACKAGE / relative).read_text())
    declaration = next(
        n for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "PRIVATE_NAMES"
    )
    skip = {id(n) for n in ast.walk(declaration)}
    used = {name for node in ast.walk(tree) if id(node) not in skip for name in _names(node, set())}
    stale = declared(relative, "PRIVATE_NAMES") - used
    assert not stale, f"xray_exp/{relative} declares {sorted(stale)} in PRIVATE_NAMES but does not use them"


STRAY = [
    "from pydicom.filereader import _read_file_meta_info",  # a declared name
    "x = ('pydicom.pixels.decoders.gdcm', '_decode_frame')",  # ... as a plugin string
    "class T(Base):\n    def _setup_ddp(self):\n        pass",  # ... overridden
    "from ray._raylet import Config",  # a private module
    "def f(study):\n    return study._storage",  # a private attribute we do not define
    "class T(Base):\n    def _step(self):\n        return super()._step()",  # a base's private method
    "import torch\ntorch.nn.Linear = None",  # a process-wide patch
]
ALLOWED = """
import os
import sys
class A:
    def _own(self):
        return self._cache
class B(A):
    def _own(self):
        return super()._own()
def g(trainer):
    trainer._mark = 1
    sys.argv = ["x"]
    os._exit(0)
    return trainer._mark
"""


def test_a_stray_use_is_reported_with_its_place(tmp_path):
    """The checker itself: each stray form outside the compat module is found, the compat module's own use and
    the package's own private names are not."""
    package = tmp_path / "xray_exp"
    (package / "elsewhere").mkdir(parents=True)
    (package / "lib_compat.py").write_text(
        "PRIVATE_NAMES = frozenset({'_read_file_meta_info', '_decode_frame', '_setup_ddp'})\n"
        "from pydicom.filereader import _read_file_meta_info\n"
    )
    for i, source in enumerate(STRAY):
        (package / "elsewhere" / f"stray_{i}.py").write_text("\n" + source + "\n")
    (package / "elsewhere" / "allowed.py").write_text(ALLOWED)
    found = violations(package, {"lib_compat.py": "pydicom"})
    assert sorted({f.split(":")[0] for f in found}) == [f"elsewhere/stray_{i}.py" for i in range(len(STRAY))], found
