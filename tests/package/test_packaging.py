"""The package as users get it: declared dependencies match the imports; the wheel works outside the checkout;
`xray_exp[serve]` is the service alone (no torch, Ultralytics or Ray) and serves a registered model."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from conftest import REPO, MlflowServer, free_port

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# The service's import path (xray_exp/serve minus the demo-model builder, plus what it imports).
SERVE_FILES = (
    "serve/",
    "sr/",
    "pacs/",
    "imaging/",
    "config/__init__.py",
    "config/override_shortcuts.py",
    "inference/__init__.py",
    "inference/onnx_detector.py",
    "registry.py",
    "errors.py",
    "__init__.py",
    "ensembles/__init__.py",
    "ensembles/fusion.py",
    "ensembles/detector.py",
    "inference/onnx_classifier.py",
    "inference/gated_onnx_detector.py",
    "gating/",
)
# Declared but never imported: loaded by another package at run time.
RUNTIME_ONLY = {
    "hydra-optuna-sweeper": "Hydra sweeper plugin",
    "hydra-ray-launcher": "Hydra launcher plugin",
    "python-multipart": "FastAPI's upload parsing",
    "onnx": "Ultralytics' ONNX export",
    "onnxslim": "Ultralytics' ONNX export",
    "torchvision": "Ultralytics' NMS and transforms",
    "pylibjpeg": "pydicom decoder",
    "pylibjpeg-libjpeg": "pydicom decoder",
    "pylibjpeg-openjpeg": "pydicom decoder",
    "pylibjpeg-rle": "pydicom decoder",
    "opencv-python-headless": "provides cv2 (the service's, headless)",
    "mlflow-skinny": "provides mlflow (client)",
}
ALSO_PROVIDES = {"cv2": {"opencv-python-headless"}}  # one module, several distributions
# Imported by the service only for an optional feature, installed with it where that feature is used.
SERVE_OPTIONAL = {"ray": "XRAY_SERVE_RAY_ADDRESS submits training jobs to a Ray cluster (pip install ray[default])"}
TEST_ONLY = {"torchmetrics", "pycocotools"}


def dist_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared(*groups: str) -> set[str]:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for group in groups:
        reqs += PYPROJECT["project"]["optional-dependencies"][group]
    return {dist_name(r) for r in reqs}


def third_party_imports(files) -> dict[str, set[str]]:
    """{top-level module: {files importing it}} over every import statement (lazy ones included)."""
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"xray_exp", "__future__"}:
                found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


@cache
def module_distributions() -> dict[str, list[str]]:
    return packages_distributions()


def providers(module: str) -> set[str]:
    dists = {d.lower().replace("_", "-") for d in module_distributions().get(module, [])}
    return dists | ALSO_PROVIDES.get(module, set())


def test_declared_dependencies_match_imports():
    files = sorted((REPO / "xray_exp").rglob("*.py"))
    serve_files = [
        f
        for f in files
        if f.relative_to(REPO / "xray_exp").as_posix().startswith(SERVE_FILES) and f.name != "demo_model.py"
    ]
    everything, service = declared("serve", "train", "dev"), declared("serve")
    imports = third_party_imports(files)
    missing = {m: sorted(where)[:3] for m, where in imports.items() if not providers(m) & everything}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
    serve_missing = {
        m: sorted(w)[:3]
        for m, w in third_party_imports(serve_files).items()
        if not providers(m) & service and m not in SERVE_OPTIONAL
    }
    assert not serve_missing, f"the service imports what xray_exp[serve] does not install: {serve_missing}"
    imported_dists = set().union(*(providers(m) for m in imports))
    unused = declared("serve", "train") - imported_dists - set(RUNTIME_ONLY)
    assert not unused, f"declared for serve/train but never imported (dev extra, or RUNTIME_ONLY?): {unused}"
    assert not TEST_ONLY & declared("serve", "train"), "test-only packages belong in the dev extra"
    assert TEST_ONLY <= declared("dev") and not TEST_ONLY & imported_dists
    assert not {"torch", "ultralytics", "ray", "mlflow"} & declared("serve"), "the service needs none of these"


def build_wheel(out: Path) -> Path:
    """The wheel, built from a copy of the sources (setuptools leaves build/ and *.egg-info where it builds)."""
    src = out.parent / "src"
    for package in ("xray_exp", "hydra_plugins"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (wheel,) = out.glob("xray_exp-*.whl")
    return wheel


def outside_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout on the path: the installed package is what runs."""
    return {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XRAY_EXP_ROOT")}, **extra}


def run_in(venv: Path, args: list[str], cwd: Path, timeout: float = 600, **env: str):
    exe = venv / "bin" / args[0] if not args[0].startswith("-") else venv / "bin" / "python"
    cmd = [str(exe), *args[1:]] if not args[0].startswith("-") else [str(exe), *args]
    return subprocess.run(cmd, cwd=cwd, env=outside_env(**env), capture_output=True, text=True, timeout=timeout)


@pytest.mark.integration
def test_wheel_works_outside_the_checkout(tmp_path):
    """Built wheel, installed without -e into a fresh venv (the dependencies: this environment's, via a .pth
    file), run from a folder that is not the checkout."""
    wheel = build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=outside_env(),
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after: pip would skip it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    where = run_in(venv, ["-c", "import xray_exp; print(xray_exp.CONF_DIR)"], elsewhere)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    job = run_in(venv, ["-m", "xray_exp.train", "epochs=3", "--cfg", "job"], elsewhere)
    assert job.returncode == 0 and "arch: yolo12n.yaml" in job.stdout and "epochs: 3" in job.stdout, job.stderr
    helped = run_in(venv, ["-m", "xray_exp.prepare", "--help"], elsewhere)
    assert helped.returncode == 0 and "nih_cxr14" in helped.stdout and "vindr_cxr" in helped.stdout, helped.stderr
    smoke = run_in(venv, ["xray-exp", "train", "debug=smoke", "tracking=disabled", "post.n_boot=0"], elsewhere)
    assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr[-3000:]
    run_dir = Path(re.search(r"^RUN_DIR=(.+)$", smoke.stdout, re.M).group(1))
    assert run_dir.parent == elsewhere / "outputs" / "runs" and (run_dir / "weights" / "best.onnx").is_file()

    # The project's own conf/ (the wheel's Hydra plugin puts it on the search path), next to outputs/.
    (elsewhere / "conf" / "experiment").mkdir(parents=True)
    (elsewhere / "conf" / "experiment" / "mine.yaml").write_text("# @package _global_\ntrain:\n  epochs: 7\n")
    mine = run_in(venv, ["-m", "xray_exp.train", "experiment=mine", "--cfg", "job"], elsewhere)
    assert mine.returncode == 0 and "epochs: 7" in mine.stdout, mine.stdout[-2000:] + mine.stderr[-2000:]


def du_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


@pytest.mark.slow
@pytest.mark.serial  # the install time is asserted
def test_serve_extra_is_the_service_alone(tmp_path):
    """`pip install xray_exp[serve]` from the registry (< 3 min), no torch/Ultralytics/Ray, serves a prediction
    from a model registered on an `mlflow server`."""
    from mlflow.tracking import MlflowClient

    try:
        from serve_fixtures import helpers as h
    except ImportError:  # pragma: no cover
        from tests.serve_fixtures import helpers as h
    from xray_exp.inference.onnx_detector import OnnxDetector
    from xray_exp.mlops.client import ensure_experiment
    from xray_exp.mlops.pyfunc_model import log_onnx_model
    from xray_exp.mlops.registry import register_model

    wheel = build_wheel(tmp_path / "dist")
    venv = tmp_path / "serve-venv"
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = run_in(
        venv,
        [
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            str(REPO / "constraints.txt"),
            f"{wheel}[serve]",
        ],
        tmp_path,
        timeout=600,
    )
    seconds = time.monotonic() - t0
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    assert seconds < 180, f"the serving install took {seconds:.0f} s"
    for heavy in ("torch", "ultralytics", "ray", "hydra"):
        probe = run_in(venv, ["-c", f"import {heavy}"], tmp_path)
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, heavy
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    largest = sorted(((du_mib(d), d.name) for d in site.iterdir() if d.is_dir()), reverse=True)[:6]
    print(
        f"serve install: {du_mib(site):.0f} MiB site-packages in {seconds:.0f} s; largest: "
        + ", ".join(f"{name} {mib:.0f}" for mib, name in largest),
        flush=True,
    )

    server = MlflowServer(tmp_path / "mlflow").start()
    service = None
    try:
        client = MlflowClient(server.uri)
        run = client.create_run(ensure_experiment(client, "YOLO12-Training"))
        pt, onnx = h.demo_model()
        model_uri = log_onnx_model(
            server.uri,
            run.info.run_id,
            {"onnx": str(onnx), "pt": str(pt), "imgsz": h.IMGSZ, "names": OnnxDetector(onnx).names},
        )
        register_model(
            client,
            model_uri,
            run.info.run_id,
            {
                "name": "yolo12n",
                "alias": "development",
                "policy": "if_better",
                "objective": "val/map40",
                "value": 0.1,
                "direction": "maximize",
                "tags": {},
            },
        )
        port = free_port()
        log = open(tmp_path / "service.log", "w")
        service = subprocess.Popen(
            [str(venv / "bin" / "python"), "-m", "xray_exp.serve", "--port", str(port)],
            cwd=tmp_path,
            env=outside_env(
                XRAY_SERVE_MODEL="models:/yolo12n@development",
                XRAY_SERVE_TRACKING_URI=server.uri,
                XRAY_EXP_MODEL_CACHE=str(tmp_path / "cache"),
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            assert service.poll() is None, (tmp_path / "service.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if json.loads(r.read())["model_loaded"]:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "service.log").read_text()[-3000:]
            time.sleep(1)
        gray = h.sample_images(1)[0][1]
        import httpx

        body = httpx.post(
            f"http://127.0.0.1:{port}/predict",
            files={"file": ("x.png", h.png_bytes(gray))},
            params={"conf": 0.01},
            timeout=60,
        ).json()
        detections, _ = OnnxDetector(onnx).predict(gray, conf=0.01)
        assert body["model"]["source"] == "registry" and len(body["findings"]) == len(detections) > 0
        assert body["findings"][0]["label"] == detections[0].label
    finally:
        if service is not None:
            service.terminate()
            service.wait(timeout=30)
        server.kill()
