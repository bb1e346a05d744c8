"""A CV folder of three tiny ONNX fold models over the tiny synthetic set, and a hand-made ONNX classifier:
the fixtures of the ensemble tests (tests/ensembles).

    tiny = tiny_cv(root, synthetic_tiny)        # {"data_yaml", "members", "cv", "names"}
    onnx = tiny_classifier(root / "cls.onnx", image_paths)   # P(abnormal) rises with the image's mean grey

The fold models are the service tests' demo detector (random-init YOLO12n, static batch 1, imgsz 160; built once
and cached) and two copies with perturbed weights, so the three disagree like fold models; the CV folder
(cv.json, folds.csv) is written by hand per the CV folder contract over the tiny synthetic set, relabelled with
the demo model's class names.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml

try:
    from serve_fixtures import helpers as h
except ImportError:  # pragma: no cover
    from tests.serve_fixtures import helpers as h

from xray_exp.evaluation.dataset import load_split

FOLDS = 3


def perturbed_copy(src: Path, dst: Path, seed: int, names: list[str] | None = None) -> Path:
    """The ONNX file with its weights jittered by 3% (seed 0: unchanged); `names` rewrites the class names."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    rng = np.random.default_rng(seed)
    if seed:
        for init in model.graph.initializer:
            array = numpy_helper.to_array(init)
            if array.dtype == np.float32 and array.size > 16:
                noisy = (array * (1 + 0.03 * rng.standard_normal(array.shape))).astype(np.float32)
                init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    if names is not None:
        for prop in model.metadata_props:
            if prop.key == "names":
                prop.value = repr(dict(enumerate(names)))
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


def write_cv(folder: Path, data_yaml: Path, onnx_files: list[Path], statuses: list[str] | None = None) -> Path:
    """A CV folder per the contract: folds.csv over train + val, cv.json with one fold run per model."""
    folder.mkdir(parents=True, exist_ok=True)
    pool = [i.image_id for split in ("train", "val") for i in load_split(data_yaml, split).images]
    with (folder / "folds.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "patient", "fold"])
        writer.writerows([image, f"p-{image}", k % FOLDS] for k, image in enumerate(pool))
    statuses = statuses or ["FINISHED"] * FOLDS
    runs = [
        {
            "fold": k,
            "status": s,
            "run_dir": str(onnx.parent.parent),
            "weights": None,
            "onnx": str(onnx) if s == "FINISHED" else None,
            "data_yaml": str(data_yaml),
            "mlflow_run_id": None,
        }
        for k, (onnx, s) in enumerate(zip(onnx_files, statuses, strict=True))
    ]
    names = yaml.safe_load(data_yaml.read_text())["names"]
    (folder / "cv.json").write_text(
        json.dumps(
            {
                "name": folder.name,
                "data_yaml": str(data_yaml),
                "folds": FOLDS,
                "seed": 0,
                "names": names,
                "imgsz": 160,
                "model": "yolo12n",
                "parent_run_id": None,
                "fold_runs": runs,
            }
        )
    )
    return folder


def tiny_cv(root: Path, synthetic_tiny) -> dict:
    """The tiny synthetic images under the demo model's class names, three fold models and their CV folder."""
    from xray_exp.serve.demo_model import NIH_CLASSES

    spec = yaml.safe_load(Path(synthetic_tiny).read_text())
    data_yaml = root / "data" / "data.yaml"
    data_yaml.parent.mkdir(parents=True)
    data_yaml.write_text(
        yaml.safe_dump(
            {**{k: spec[k] for k in ("path", "train", "val", "test")}, "names": dict(enumerate(NIH_CLASSES))}
        )
    )
    _, onnx = h.demo_model()
    members = [perturbed_copy(onnx, root / "runs" / f"fold{k}" / "weights" / "best.onnx", seed=k) for k in range(FOLDS)]
    cv = write_cv(root / "outputs" / "cv" / "demo3", data_yaml, members)
    return {"data_yaml": data_yaml, "members": members, "cv": cv, "names": list(NIH_CLASSES)}


def tiny_classifier(path: Path, images: list[Path], imgsz: int = 64) -> Path:
    """A normal/abnormal classifier written by hand in ONNX, with Ultralytics' classify metadata (names
    abnormal/normal, task classify, imgsz): global average pool -> linear -> softmax, so that
    P(abnormal) = sigmoid(k * (mean grey - c)), with c the median and k spreading `images` over ~0.05..0.95."""
    import onnx
    from onnx import TensorProto, helper

    from xray_exp.imaging import read_xray
    from xray_exp.inference.onnx_classifier import classify_input

    means = np.array([classify_input(read_xray(p), imgsz).mean() for p in images])
    centre, spread = float(np.median(means)), float(max(np.ptp(means), 1e-3))
    k = 6.0 / spread
    weight = np.array([[k / 3, 0.0]] * 3, np.float32)
    bias = np.array([-k * centre, 0.0], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["output0"], axis=1),
        ],
        "tiny_cls",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, imgsz, imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 2])],
        [onnx.numpy_helper.from_array(weight, "W"), onnx.numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (
        ("names", "{0: 'abnormal', 1: 'normal'}"),
        ("task", "classify"),
        ("imgsz", f"[{imgsz}, {imgsz}]"),
    ):
        model.metadata_props.add(key=key, value=value)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
