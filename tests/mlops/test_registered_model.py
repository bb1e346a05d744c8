"""The registered MLflow model answers: images (paths, bytes, a pandas column; PNG/JPEG/DICOM) in, findings out,
with the service's own decoding, letterbox and NMS; loaded with pyfunc and served by `mlflow models serve`."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, free_port
from mlflow.tracking import MlflowClient

from xray_exp.data.synthetic_dicom import chest_xray_bytes
from xray_exp.imaging import decode_xray_bytes, read_xray
from xray_exp.inference.onnx_detector import OnnxDetector, findings
from xray_exp.mlops.client import ensure_experiment
from xray_exp.mlops.pyfunc_model import log_onnx_model
from xray_exp.mlops.registry import register_model

try:
    from serve_fixtures import helpers as h
except ImportError:  # pragma: no cover
    from tests.serve_fixtures import helpers as h

CONF = 0.01  # the demo model is random-init: a low threshold gives every image a few findings to compare


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """The demo detector logged by xray_exp.mlops.pyfunc_model and registered as yolo12n@development (sqlite)."""
    root = tmp_path_factory.mktemp("registered")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(ensure_experiment(client, "YOLO12-Training"))
    pt, onnx = h.demo_model()
    names = OnnxDetector(onnx).names
    example = h.nih_paths()[0] if h.nih_paths() else None
    model_uri = log_onnx_model(
        uri,
        run.info.run_id,
        {
            "onnx": str(onnx),
            "pt": str(pt),
            "names": names,
            "imgsz": h.IMGSZ,
            "example": str(example) if example else None,
        },
    )
    decision = register_model(
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
    assert decision["promoted"]
    return {"uri": uri, "onnx": onnx, "root": root}


def expected(onnx, data: bytes, conf: float = CONF) -> list[dict]:
    detections, _ = OnnxDetector(onnx).predict(decode_xray_bytes(data), conf=conf, iou=0.7)
    return findings(detections)


def test_pyfunc_takes_images_and_returns_findings(registered, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered["uri"])
    mlflow.set_tracking_uri(registered["uri"])
    model = mlflow.pyfunc.load_model("models:/yolo12n@development")
    assert model.metadata.get_input_schema().inputs[0].type.name == "binary"
    assert {p.name for p in model.metadata.get_params_schema().params} == {"conf", "iou", "max_det"}
    assert model.metadata.saved_input_example_info is not None

    (name, gray), (_, gray2) = h.sample_images(2)
    png, jpeg = h.png_bytes(gray), h.jpeg_bytes(gray2)
    dicom = chest_xray_bytes((gray.astype(np.uint16) * 16), window=(2048, 4096))
    path = tmp_path / "chest.png"
    path.write_bytes(png)
    out = model.predict([str(path), png, jpeg, dicom], params={"conf": CONF})
    assert list(out.columns) == ["findings", "width", "height"] and len(out) == 4
    assert out["findings"][0] == expected(registered["onnx"], png) and len(out["findings"][0]) > 0
    assert out["findings"][1] == out["findings"][0]  # path and bytes: the same image
    assert out["findings"][2] == expected(registered["onnx"], jpeg)
    assert out["findings"][3] == expected(registered["onnx"], dicom)
    assert (out["width"][0], out["height"][0]) == (gray.shape[1], gray.shape[0])
    for f in out["findings"][0]:  # boxes in the original image's pixels
        x1, y1, x2, y2 = f["box"]
        assert 0 <= x1 < x2 <= gray.shape[1] and 0 <= y1 < y2 <= gray.shape[0]
        assert f["label"] in OnnxDetector(registered["onnx"]).names.values()

    column = model.predict(pd.DataFrame({"image": [png]}), params={"conf": 0.9999})
    assert column["findings"][0] == expected(registered["onnx"], png, 0.9999)
    with pytest.raises(Exception, match="neither a readable file nor base64"):
        model.predict(["/no/such/file.png"])


def test_mlflow_models_serve_answers_findings(registered, tmp_path):
    nih = h.nih_paths()
    if not nih:
        pytest.skip("NIH sample images (../shared/data/nih-cxr14-bbox) absent")
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registered["uri"],
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # its uvicorn
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/yolo12n@development",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert time.time() < deadline, "mlflow models serve did not come up"
                time.sleep(1)
        data = nih[0].read_bytes()
        body = {"dataframe_split": {"data": [[base64.b64encode(data).decode()]]}, "params": {"conf": CONF}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        row = answer["predictions"][0]
        gray = read_xray(nih[0])
        assert (row["width"], row["height"]) == (gray.shape[1], gray.shape[0])
        assert row["findings"] == expected(registered["onnx"], data) and len(row["findings"]) > 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def test_service_and_model_share_one_pipeline():
    from xray_exp.serve import model_source

    assert model_source.OnnxDetector is OnnxDetector
    assert (
        "fastapi"
        not in subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import xray_exp.inference.onnx_detector, xray_exp.imaging"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stderr
    )


def test_the_code_shipped_in_the_models_is_all_they_import():
    """Every module of ours that a logged pyfunc imports, directly or through another, is in its code_paths
    (the model loads where xray_exp is not installed)."""
    import ast

    from xray_exp.mlops.ensemble_model import ENSEMBLE_CODE
    from xray_exp.mlops.gated_model import GATED_CODE
    from xray_exp.mlops.pyfunc_model import PACKAGE, SHARED_CODE

    def ours(relative: str) -> set[str]:
        tree = ast.parse((PACKAGE / relative).read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xray_exp."):
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names if a.name.startswith("xray_exp.")}
        files = set()
        for module in names:
            path = module.removeprefix("xray_exp.").replace(".", "/")
            files.add(f"{path}/__init__.py" if (PACKAGE / path).is_dir() else f"{path}.py")
        return files

    for entry, shipped in (
        ("mlops/onnx_pyfunc.py", (*SHARED_CODE, *ENSEMBLE_CODE)),
        ("mlops/onnx_cls_pyfunc.py", SHARED_CODE),
        ("mlops/onnx_gated_pyfunc.py", (*SHARED_CODE, *GATED_CODE)),
    ):
        needed, todo = set(), [entry]
        while todo:
            for name in ours(todo.pop()) - needed:
                needed.add(name)
                todo.append(name)
        assert needed <= set(shipped), f"{entry} imports {sorted(needed - set(shipped))}, not shipped"
