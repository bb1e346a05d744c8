"""The package's own import graph: no circles, and every import of our own code inside a function says why.

    python -m pytest tests/package/test_import_graph.py -q

Read from the source (ast). An edge is any `import xray_exp...` / `from xray_exp... import` of another module
of the package, at the top or inside a function: a circle through a lazy import is still a circle (it only
moves the failure from import time to call time, and hides the layering).

Imports of our own modules belong at the top of the module, where the dependency graph can be read. One
inside a function is allowed only with a `# lazy: <why>` comment on the statement: the module it loads is
heavy (torch, Ultralytics, MLflow, ...: `--help` and the service must not pay for it), it is only needed on
one path, it is optional, or it must be looked up at call time.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "xray_exp"
REASONS = re.compile(
    r"# .*lazy: (heavy \(.+\)|only on this path|optional|looked up at call time.*|MLflow loads this model file.*)"
)


def module_names(package: Path) -> dict[str, Path]:
    names = {}
    for path in package.rglob("*.py"):
        dotted = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        names[dotted.removesuffix(".__init__")] = path
    return names


def own_imports(package: Path) -> list[tuple[str, str, int, bool, str]]:
    """(importer, imported module, line, inside a function, source lines) for every import of our own code."""
    names = module_names(package)

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in names:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found = []
    for importer, path in sorted(names.items()):
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source, filename=str(path))
        in_function: set[ast.AST] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                in_function.update(ast.walk(node))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                dotted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                dotted = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            text = "\n".join(lines[node.lineno - 1 : node.end_lineno])
            for target in {resolve(d) for d in dotted if d.split(".")[0] == package.name} - {None, importer}:
                found.append((importer, str(target), node.lineno, node in in_function, text))
    return found


def circles(edges: list[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def unexplained_lazy_imports(package: Path) -> list[str]:
    return [
        f"{importer} line {line}: {text.splitlines()[0].strip()}"
        for importer, _, line, lazy, text in own_imports(package)
        if lazy and not REASONS.search(text)
    ]


def test_no_import_circles_in_the_package():
    imports = own_imports(PACKAGE)
    assert len(imports) > 300  # the reader sees the package
    found = circles([(a, b) for a, b, *_ in imports])
    assert not found, f"import circles (break them by moving the shared part below both): {found}"


def test_our_imports_inside_functions_say_why():
    imports = own_imports(PACKAGE)
    lazy = [i for i in imports if i[3]]
    assert 0 < len(lazy) < len(imports) / 4, f"{len(lazy)} of {len(imports)} own imports sit inside functions"
    found = unexplained_lazy_imports(PACKAGE)
    assert not found, "own imports inside functions without a '# lazy: <why>' comment (move them to the top):\n" + (
        "\n".join(found)
    )


def test_the_checker_finds_a_circle_and_an_unexplained_lazy_import(tmp_path):
    package = tmp_path / "xray_exp"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from xray_exp.sub.b import thing\n")
    (package / "sub" / "b.py").write_text(
        "def thing():\n    from xray_exp import a\n    return a\n\n"
        "def other():\n    from xray_exp.c import x  # lazy: heavy (torch)\n    return x\n"
    )
    (package / "c.py").write_text("x = 1\n")
    imports = own_imports(package)
    assert circles([(a, b) for a, b, *_ in imports]) == [["xray_exp.a", "xray_exp.sub.b"]]
    assert unexplained_lazy_imports(package) == ["xray_exp.sub.b line 2: from xray_exp import a"]
