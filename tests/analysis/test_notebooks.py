"""The notebooks run top to bottom against a small real store and dataset, and are committed clean.

A session fixture trains twice (debug=smoke, 2 epochs, SGD at two learning rates) into a temporary project
root: an sqlite MLflow store with per-epoch curves, a registered yolo12n@development and the tiny synthetic
dataset. Every notebook is executed with nbclient on a kernel that runs this interpreter; a cell error
fails the test. The executed notebooks and their figures are saved under outputs/test-artifacts/notebooks/
for a look.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_dir_of

NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "outputs" / "test-artifacts" / "notebooks"
EXECUTED = ("01_runs", "02_predictions", "03_dataset")
KERNEL = "xray-exp-tests"
PARAMETER_ENV = (
    "MLFLOW_TRACKING_URI",
    "XRAY_EXP_ROOT",
    "XRAY_EXP_EXPERIMENT",
    "XRAY_EXP_OBJECTIVE",
    "XRAY_EXP_DIRECTION",
    "XRAY_EXP_CURVE_RUNS",
    "XRAY_EXP_MODEL",
    "XRAY_EXP_MODEL_ALIAS",
    "XRAY_EXP_DATA_YAML",
    "XRAY_EXP_SPLIT",
    "XRAY_EXP_CONF",
    "XRAY_EXP_EXAMPLE_SPLIT",
    "XRAY_EXP_CV_DIR",
)


def _load_strip_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("strip_notebooks", REPO / "scripts" / "strip_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- committed notebooks are clean ------------------------------------------------------------------


def committed_notebooks() -> list[Path]:
    """Every notebook in the repository outside outputs/, run stores, virtual environments and checkpoints."""
    skip = {".venv", "outputs", "mlruns", ".ipynb_checkpoints", ".git", "node_modules", "__pycache__"}
    found = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".")]
        found += [Path(folder) / f for f in files if f.endswith(".ipynb")]
    return sorted(found)


def test_committed_notebooks_have_no_outputs():
    found = committed_notebooks()
    assert {p.stem for p in found if p.parent == NOTEBOOKS} == set(EXECUTED), (
        "every notebook in notebooks/ must be executed by this module (add it to EXECUTED)"
    )
    strip = _load_strip_script()
    dirty = {str(p.relative_to(REPO)): strip.problems(json.loads(p.read_text())) for p in found}
    dirty = {k: v for k, v in dirty.items() if v}
    assert not dirty, f"notebooks committed with outputs (run python scripts/strip_notebooks.py): {dirty}"


def test_notebooks_read_their_parameters_first():
    """The first code cell is tagged `parameters` and reads the environment (how the tests and users set them)."""
    for name in EXECUTED:
        nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
        first = next(c for c in nb["cells"] if c["cell_type"] == "code")
        assert "parameters" in first["metadata"].get("tags", []), name
        assert "os.environ" in "".join(first["source"]), name


def test_strip_script_cleans_and_checks(tmp_path):
    nb = json.loads((NOTEBOOKS / "03_dataset.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code[0]["execution_count"] = 1
    code[1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}]
    code[1]["metadata"]["execution"] = {"iopub.execute_input": "2026-11-26T11:00:00"}
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
    dirty = tmp_path / "dirty.ipynb"
    dirty.write_text(json.dumps(nb))
    script = [sys.executable, str(REPO / "scripts" / "strip_notebooks.py")]

    check = subprocess.run([*script, "--check", str(dirty)], capture_output=True, text=True)
    assert check.returncode == 1
    assert "cell 1: execution_count 1" in check.stdout and "output(s)" in check.stdout

    assert subprocess.run([*script, str(dirty)], capture_output=True, text=True).returncode == 0
    clean = json.loads(dirty.read_text())
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in clean["cells"] if c["cell_type"] == "code")
    assert "execution" not in clean["cells"][[c["id"] for c in clean["cells"]].index(code[1]["id"])]["metadata"]
    assert clean["metadata"]["language_info"] == {"name": "python"}
    assert clean["cells"][1]["metadata"]["tags"] == ["parameters"]  # tags survive
    assert subprocess.run([*script, "--check", str(dirty)], capture_output=True, text=True).returncode == 0
    # stripping is idempotent and writes what the committed notebooks look like
    assert dirty.read_text() == (NOTEBOOKS / "03_dataset.ipynb").read_text()


# ---- executing them -------------------------------------------------------------------------------


def _train(root: Path, *overrides: str) -> Path:
    env = {**os.environ, "XRAY_EXP_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    # cwd=root: the sqlite store's default artifact folder (./mlruns) lands in the temporary root.
    # SGD without warm-up: lr0 is used as given (optimizer=auto picks its own; warm-up would outlast 2 epochs).
    args = ["debug=smoke", "train.epochs=2", "train.optimizer=SGD", "train.warmup_epochs=0", *overrides]
    proc = subprocess.run(
        [sys.executable, "-m", "xray_exp.train", *args], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise AssertionError(f"training failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return run_dir_of(proc)


@pytest.fixture(scope="session")
def notebook_project(session_dir):
    """A project root with two finished runs (one registered as yolo12n@development) and their dataset."""
    root = session_dir / "notebook-project"
    root.mkdir(parents=True, exist_ok=True)
    first = _train(root, "train.lr0=0.02", "post.eval_splits=[test]", "tracking.register=if_better")
    _train(
        root,
        "train.lr0=0.002",
        "post.onnx=false",
        "post.eval_splits=[test]",
        "post.n_boot=0",
        "post.samples=0",
        "tracking.register=never",
    )
    data_yaml = json.loads((first / "dataset.json").read_text())["data_yaml"]
    return {"root": root, "uri": f"sqlite:///{root / 'outputs' / 'mlflow.db'}", "data_yaml": data_yaml}


@pytest.fixture(scope="session")
def kernel_dir(session_dir) -> Path:
    """A Jupyter data folder with one kernelspec that runs this very interpreter (the venv's python)."""
    jupyter = session_dir / "jupyter"
    spec = jupyter / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "xray_exp tests",
                "language": "python",
            }
        )
    )
    return jupyter


def execute(name: str, env: dict[str, str], kernel_dir: Path, monkeypatch, tag: str = "") -> dict:
    """Run notebooks/<name>.ipynb in notebooks/ with `env` as its parameters; save it and its figures."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))  # our kernelspec first, whatever the user has
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    kernel_env = {k: v for k, v in os.environ.items() if k not in PARAMETER_ENV}
    client = NotebookClient(
        nb, kernel_name=KERNEL, timeout=300, startup_timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute(env={**kernel_env, **env})
    out = ARTIFACTS / f"{name}{tag}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    nbformat.write(nb, out.with_suffix(".ipynb"))
    figures, texts = [], []
    for k, cell in enumerate(nb.cells):
        for j, output in enumerate(cell.get("outputs", [])):
            assert output["output_type"] != "error", f"{name} cell {k}: {output.get('ename')}"
            data = output.get("data", {})
            if "image/png" in data:
                path = out / f"cell{k:02d}-{j}.png"
                path.write_bytes(base64.b64decode(data["image/png"]))
                figures.append(path)
            texts.append(output.get("text", "") + data.get("text/plain", "") + data.get("text/html", ""))
    return {"nb": nb, "figures": figures, "text": "\n".join(texts)}


def figure_cells(result: dict) -> set[int]:
    return {int(p.name[4:6]) for p in result["figures"]}


def code_cell_index(nb, snippet: str) -> int:
    return next(k for k, c in enumerate(nb.cells) if c.cell_type == "code" and snippet in c.source)


@pytest.mark.integration
def test_runs_notebook(notebook_project, kernel_dir, monkeypatch):
    env = {"MLFLOW_TRACKING_URI": notebook_project["uri"], "XRAY_EXP_ROOT": str(notebook_project["root"])}
    result = execute("01_runs", env, kernel_dir, monkeypatch)
    nb, text = result["nb"], result["text"]
    assert notebook_project["uri"] in text  # the parameter reached the kernel
    assert "2 runs" in text and "YOLO12-Training" in text
    assert code_cell_index(nb, "plot_metric_curves") in figure_cells(result)
    assert "0.002" in text and "yolo12n" in text  # the runs table / best run show params and the model
    assert "No sweep in this store" in text
    assert "No cross-validation in this project" in text  # the CV section with a CV: tests/cv/test_cv_run.py

    # the same store once a sweep adopted both runs (what a sweep's parent run looks like): a copy of it
    from mlflow.tracking import MlflowClient

    swept = notebook_project["root"] / "outputs" / "mlflow-sweep.db"
    shutil.copyfile(notebook_project["root"] / "outputs" / "mlflow.db", swept)
    client = MlflowClient(f"sqlite:///{swept}")
    experiment = client.get_experiment_by_name("YOLO12-Training").experiment_id
    parent = client.create_run(experiment, run_name="sweep-lr0")
    for run in client.search_runs([experiment]):
        if run.info.run_id != parent.info.run_id:
            client.set_tag(run.info.run_id, "mlflow.parentRunId", parent.info.run_id)
    client.set_terminated(parent.info.run_id)
    result = execute(
        "01_runs", {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{swept}"}, kernel_dir, monkeypatch, tag="-sweep"
    )
    assert "No sweep in this store" not in result["text"]
    line = next(t for t in result["text"].splitlines() if t.startswith("sweep sweep-lr0"))
    assert line.startswith("sweep sweep-lr0: 2 children, objective test/mAP50-95 (maximize), varied: ")
    assert "train.lr0" in line  # (and the post.* / tracking.* overrides the two runs differ in)
    assert code_cell_index(result["nb"], "plot_sweep") in figure_cells(result)


@pytest.mark.integration
def test_predictions_notebook(notebook_project, kernel_dir, monkeypatch):
    env = {
        "MLFLOW_TRACKING_URI": notebook_project["uri"],
        "XRAY_EXP_ROOT": str(notebook_project["root"]),
        "XRAY_EXP_CONF": "0.001",
    }  # the 2-epoch model's scores are tiny: draw them anyway
    result = execute("02_predictions", env, kernel_dir, monkeypatch)
    nb, text = result["nb"], result["text"]
    assert "yolo12n@development" in text
    assert notebook_project["data_yaml"] in text  # defaulted to the training run's dataset
    assert "test/map40" in text and "4 images" in text
    for snippet in (
        "plot_predictions",
        'plot_errors(result, split, "FP")',
        'plot_errors(result, split, "FN")',
        "plot_per_class",
    ):
        assert code_cell_index(nb, snippet) in figure_cells(result), snippet
    for name in ("nodule", "effusion", "cardiomegaly", "pneumothorax"):
        assert name in text


@pytest.mark.integration
def test_dataset_notebook(notebook_project, kernel_dir, monkeypatch):
    env = {"XRAY_EXP_DATA_YAML": notebook_project["data_yaml"], "XRAY_EXP_ROOT": str(notebook_project["root"])}
    result = execute("03_dataset", env, kernel_dir, monkeypatch)
    nb, text = result["nb"], result["text"]
    assert notebook_project["data_yaml"] in text
    assert "(no findings)" in text and "train" in text and "test" in text
    for snippet in ("plot_class_balance", "plot_box_sizes", "plot_box_positions", "plot_examples"):
        assert code_cell_index(nb, snippet) in figure_cells(result), snippet
