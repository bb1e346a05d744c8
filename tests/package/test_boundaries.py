"""Import boundaries of the package: one seam per outside system.

    nothing outside xray_exp/yolo/ imports ultralytics
    nothing outside xray_exp/mlops/ imports mlflow
    nothing outside xray_exp/distributed/cluster.py calls ray.init
    nothing outside xray_exp/mlops/client.py makes an MlflowClient
    nothing under xray_exp/runs/, yolo/ or mlops/ imports the sweep package (a sweep job is told its parent)

Read from the source (ast), so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "xray_exp"


@dataclass(frozen=True)
class Rule:
    name: str
    owner: str  # a folder ("yolo/") or a file ("distributed/cluster.py") relative to the package
    module: str = ""  # the outside package only `owner` may import
    call: str = ""  # "ray.init": the call only `owner` may make

    def owns(self, relative: str) -> bool:
        return relative.startswith(self.owner) if self.owner.endswith("/") else relative == self.owner


RULES = [
    Rule("ultralytics", "yolo/", module="ultralytics"),
    Rule("mlflow", "mlops/", module="mlflow"),
    Rule("ray.init", "distributed/cluster.py", call="ray.init"),
    Rule("MlflowClient", "mlops/client.py", call="MlflowClient"),
]
LAYERS_BELOW_SWEEPS = ("runs/", "yolo/", "mlops/")


def _imported_modules(node: ast.AST) -> list[str]:
    """Modules an import statement or an importlib.import_module/__import__ call with a literal names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = ast.unparse(node.func)
        if func in ("importlib.import_module", "import_module", "__import__") and isinstance(node.args[0].value, str):
            return [node.args[0].value]
    return []


def _breaks(rule: Rule, node: ast.AST) -> bool:
    if rule.module:
        return any(m == rule.module or m.startswith(rule.module + ".") for m in _imported_modules(node))
    if isinstance(node, ast.Call):
        return ast.unparse(node.func) == rule.call
    # `from ray import init` and the like: the call under another name
    head, _, attr = rule.call.rpartition(".")
    return isinstance(node, ast.ImportFrom) and node.module == head and any(a.name == attr for a in node.names)


def violations(package: Path, rule: Rule) -> list[str]:
    """`path:line` of every statement under `package` that breaks `rule`."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if rule.owns(relative):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        found += [f"{relative}:{node.lineno}" for node in ast.walk(tree) if _breaks(rule, node)]
    return found


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(RULES[0], id="ultralytics-only-in-yolo"),
        pytest.param(RULES[1], id="mlflow-only-in-mlops"),
        pytest.param(RULES[2], id="ray-init-only-in-cluster"),
        pytest.param(RULES[3], id="mlflow-client-only-in-client-py"),
    ],
)
def test_package_keeps_its_seams(rule):
    assert PACKAGE.is_dir() and any(rule.owns(p.relative_to(PACKAGE).as_posix()) for p in PACKAGE.rglob("*.py"))
    found = violations(PACKAGE, rule)
    assert not found, f"{rule.name} used outside xray_exp/{rule.owner}: {found}"


STRAY = {
    "ultralytics": [
        "from ultralytics import YOLO",
        "import ultralytics.utils as u",
        "def f():\n    import importlib\n    return importlib.import_module('ultralytics.nn.tasks')",
    ],
    "mlflow": ["import mlflow", "def f():\n    from mlflow.tracking import MlflowClient\n    return MlflowClient"],
    "ray.init": ["import ray\nray.init(address='local')", "from ray import init"],
    "MlflowClient": ["client = MlflowClient(tracking_uri='sqlite:///x.db')"],
}
ALLOWED = {
    "ultralytics": "from ultralytics import YOLO",
    "mlflow": "import mlflow",
    "ray.init": "import ray\nray.init(address='local')",
    "MlflowClient": "from mlflow import MlflowClient\nclient = MlflowClient()",
}


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_a_stray_use_is_reported_with_its_place(rule, tmp_path):
    """The checker itself: each stray form outside the owner is found, the owner's own use is not, and
    look-alikes (ultralytics_extra, myray.init) are not."""
    package = tmp_path / "xray_exp"
    (package / "elsewhere").mkdir(parents=True)
    owner = package / (rule.owner + "__init__.py" if rule.owner.endswith("/") else rule.owner)
    owner.parent.mkdir(parents=True, exist_ok=True)
    owner.write_text(ALLOWED[rule.name] + "\n")
    for i, source in enumerate(STRAY[rule.name]):
        (package / "elsewhere" / f"stray_{i}.py").write_text("\n" + source + "\n")
    (package / "elsewhere" / "lookalike.py").write_text("import ultralytics_extra\nimport mlflowish\nmyray.init()\n")
    found = violations(package, rule)
    assert sorted(p.split(":")[0] for p in found) == [f"elsewhere/stray_{i}.py" for i in range(len(STRAY[rule.name]))]
    assert all(int(p.split(":")[1]) >= 2 for p in found)


def test_the_run_lifecycle_does_not_know_about_sweeps():
    """A single run does not import multirun code: the entry point passes a sweep job its parent run."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(LAYERS_BELOW_SWEEPS):
            tree = ast.parse(path.read_text(), filename=str(path))
            found += [
                f"{relative}:{node.lineno}"
                for node in ast.walk(tree)
                if any(m == "xray_exp.sweep" or m.startswith("xray_exp.sweep.") for m in _imported_modules(node))
            ]
    assert any(PACKAGE.glob("runs/*.py")) and not found, found
