"""xray_exp.analysis: runs tables from a hand-built MLflow store, prediction figures, dataset statistics."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from xray_exp.analysis import dataset as D
from xray_exp.analysis import predictions as P
from xray_exp.analysis import runs
from xray_exp.evaluation.predict import SplitPredictions
from xray_exp.metrics import evaluate_records
from xray_exp.mlops.client import default_tracking_uri
from xray_exp.project import project_root

FIGURES = REPO / "outputs" / "test-artifacts" / "analysis"


def save(fig, name: str) -> Path:
    """Keep the figure for a look (outputs/test-artifacts/analysis/) and check it renders."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / f"{name}.png"
    fig.savefig(path)
    assert path.stat().st_size > 5000
    return path


def image_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.images]


# ---- project root ---------------------------------------------------------------------------------


def test_project_root_env_then_conf_folder_upwards(tmp_path, monkeypatch):
    monkeypatch.setenv("XRAY_EXP_ROOT", str(tmp_path))
    assert project_root(REPO / "notebooks") == tmp_path.resolve()
    monkeypatch.delenv("XRAY_EXP_ROOT")
    assert project_root(REPO / "notebooks") == REPO
    assert project_root(tmp_path) == tmp_path.resolve()  # no outputs/ or xray_exp/conf above: the start folder


# ---- runs -----------------------------------------------------------------------------------------


def _run(client, experiment_id, name, params, metrics=None, tags=None, status="FINISHED", curves=None):
    """A finished run with params, final metrics (at step epochs+1) and per-epoch curves {metric: [values]}."""
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id, run_name=name, tags=tags or {})
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    logged = [Metric(m, v, now, step) for m, values in (curves or {}).items() for step, v in enumerate(values, start=1)]
    epochs = max((len(values) for values in (curves or {}).values()), default=0)
    logged += [Metric(m, v, now, epochs + 1) for m, v in (metrics or {}).items()]
    client.log_batch(run_id, metrics=logged, params=[Param(k, v) for k, v in params.items()])
    if status != "RUNNING":
        client.set_terminated(run_id, status=status)
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Training runs of two models, a failed run, a finetune run in another experiment and a 5-child sweep."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    train = client.create_experiment("YOLO12-Training", artifact_location=str(root / "artifacts"))
    tune = client.create_experiment("YOLO12-Finetuning", artifact_location=str(root / "artifacts"))
    ids = {}
    base = {
        "train.epochs": "3",
        "train.imgsz": "128",
        "train.optimizer": "SGD",
        "objective.metric": "test/mAP50-95",
        "objective.direction": "maximize",
    }
    curve = {"train/box_loss": [3.0, 2.5, 2.0], "ultralytics/val/mAP50-95": [0.1, 0.2, 0.3]}
    ids["n_low"] = _run(
        client,
        train,
        "n-low",
        {**base, "model.name": "yolo12n", "train.lr0": "0.01"},
        {"test/mAP50-95": 0.30, "val/mAP50-95": 0.33, "ultralytics/val/mAP50-95": 0.31},
        {"model": "yolo12n", "mode": "train"},
        curves=curve,
    )
    ids["n_high"] = _run(
        client,
        train,
        "n-high",
        {**base, "model.name": "yolo12n", "train.lr0": "0.001"},
        {"test/mAP50-95": 0.40},
        {"model": "yolo12n", "mode": "train"},
        curves={"train/box_loss": [3.0, 2.0, 1.5], "ultralytics/val/mAP50-95": [0.2, 0.3, 0.4]},
    )
    ids["n_failed"] = _run(
        client,
        train,
        "n-failed",
        {**base, "model.name": "yolo12n", "train.lr0": "0.1"},
        {"test/mAP50-95": 0.90},
        {"model": "yolo12n", "mode": "train"},
        status="FAILED",
    )
    ids["s"] = _run(
        client,
        train,
        "s",
        {**base, "model.name": "yolo12s", "train.lr0": "0.01"},
        {"test/mAP50-95": 0.50},
        {"model": "yolo12s", "mode": "train"},
    )
    ids["tuned"] = _run(
        client,
        tune,
        "tuned",
        {**base, "model.name": "yolo12n", "train.lr0": "0.002"},
        {"test/mAP50-95": 0.45},
        {"model": "yolo12n", "mode": "Mode.finetune"},
    )
    parent = _run(client, train, "sweep-1", {})
    ids["parent"] = parent
    sweep = {"objective.metric": "val/map40", "objective.direction": "maximize", "train.epochs": "3"}
    children = [
        ("yolo12n", "0.001", 0.20),
        ("yolo12n", "0.01", 0.35),
        ("yolo12s", "0.003", 0.50),
        ("yolo12s", "0.03", 0.10),
    ]
    for k, (model, lr0, value) in enumerate(children):
        _run(
            client,
            train,
            f"sweep-1-{k}",
            {**sweep, "model.name": model, "model.arch": f"{model}.yaml", "train.lr0": lr0, "run_name": f"child-{k}"},
            {"val/map40": value},
            {
                "mlflow.parentRunId": parent,
                "model": model,
                "mode": "train",
                "hydra.overrides": f"model={model} train.lr0={lr0}",
            },
        )
    _run(
        client,
        train,
        "sweep-1-4",
        {**sweep, "model.name": "yolo12n", "model.arch": "yolo12n.yaml", "train.lr0": "0.1"},
        tags={"mlflow.parentRunId": parent},
        status="RUNNING",
    )
    # sweeps in their own experiment: one as xray_exp.sweep logs its parent (objective params, search space),
    # one with bare children (no overrides tags): what varies is read from the params alone
    variants = client.create_experiment("Sweep-variants", artifact_location=str(root / "artifacts"))
    ids["optuna"] = _run(
        client,
        variants,
        "sweep-optuna",
        {"objective.metric": "test/map40", "objective.direction": "minimize"},
        tags={"sweep.role": "parent", "sweep.search_space": '{"train.lr0": "interval(0.001, 0.1)"}'},
    )
    for k, (lr0, samples, value) in enumerate([("0.001", "0", 0.3), ("0.05", "4", 0.2)]):
        _run(
            client,
            variants,
            f"optuna-{k}",
            {"train.lr0": lr0, "post.samples": samples, "model.name": "yolo12n"},
            {"test/map40": value},
            {"mlflow.parentRunId": ids["optuna"]},
        )
    ids["bare"] = _run(client, variants, "sweep-bare", {})
    for k, (model, lr0) in enumerate([("yolo12n", "0.01"), ("yolo12s", "0.02")]):
        _run(
            client,
            variants,
            f"bare-{k}",
            {"model.name": model, "model.arch": f"{model}.yaml", "train.lr0": lr0},
            {"test/mAP50-95": 0.1 * (k + 1)},
            {"mlflow.parentRunId": ids["bare"]},
        )
    return {"uri": uri, "ids": ids}


def test_default_tracking_uri(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert default_tracking_uri() == "http://mlflow.example:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'outputs' / 'mlflow.db'}"


def test_missing_sqlite_store_is_a_clear_error_and_creates_nothing(tmp_path):
    db = tmp_path / "outputs" / "mlflow.db"
    with pytest.raises(FileNotFoundError, match="train once"):
        runs.runs_table(f"sqlite:///{db}")
    assert not db.exists()


def test_runs_table_rows_columns_and_types(store):
    table = runs.runs_table(store["uri"])
    assert len(table) == 17
    assert list(table.columns[:10]) == runs.RUN_COLUMNS
    assert {"train.lr0", "test/mAP50-95"} <= set(table.columns)
    assert table["train.lr0"].dtype == float and table["train.epochs"].dtype.kind in "if"
    assert table["start_time"].is_monotonic_decreasing
    by_name = table.set_index("run_name")
    assert by_name.loc["sweep-1", "is_parent"] and not by_name.loc["n-low", "is_parent"]
    assert by_name.loc["sweep-1-0", "parent_run_id"] == store["ids"]["parent"]
    assert by_name.loc["tuned", "mode"] == "finetune"  # 'Mode.finetune' from older runs, normalised
    assert by_name.loc["n-low", "test/mAP50-95"] == pytest.approx(0.30)
    assert np.isnan(by_name.loc["n-high", "test/map40"])
    assert by_name.loc["s", "model"] == "yolo12s"

    tuned = runs.runs_table(store["uri"], "YOLO12-Finetuning")
    assert list(tuned["run_name"]) == ["tuned"] and set(tuned["experiment"]) == {"YOLO12-Finetuning"}
    with pytest.raises(ValueError, match="known: Default, Sweep-variants, YOLO12-Finetuning, YOLO12-Training"):
        runs.runs_table(store["uri"], "nope")
    wide = runs.runs_table(store["uri"], ["YOLO12-Finetuning"], all_columns=True)
    assert {"objective.metric", "model.name", "test/mAP50-95"} <= set(wide.columns)


def test_an_experiment_without_runs_gives_empty_tables(store):
    table = runs.runs_table(store["uri"], "Default")
    assert table.empty and list(table.columns[:10]) == runs.RUN_COLUMNS
    assert runs.best_runs_per_model(table, "test/mAP50-95").empty
    assert runs.find_sweeps(table).empty
    history = runs.metric_history(store["uri"], table)
    assert history.empty
    assert "No per-epoch metrics" in runs.plot_metric_curves(history).axes[0].texts[0].get_text()


def test_experiments_counts_runs(store):
    counts = runs.experiments(store["uri"]).set_index("experiment")["runs"]
    assert counts["YOLO12-Training"] == 10 and counts["YOLO12-Finetuning"] == 1


def test_metric_history_keeps_training_epochs(store):
    table = runs.runs_table(store["uri"], "YOLO12-Training")
    picked = table[table["run_name"].isin(["n-low", "n-high"])]
    history = runs.metric_history(store["uri"], picked, ["ultralytics/val/mAP50-95", "train/box_loss"])
    low = history[(history["run_name"] == "n-low") & (history["metric"] == "ultralytics/val/mAP50-95")]
    assert list(low["step"]) == [1, 2, 3] and list(low["value"]) == pytest.approx([0.1, 0.2, 0.3])
    everything = runs.metric_history(
        store["uri"], [store["ids"]["n_low"]], ["ultralytics/val/mAP50-95"], epochs_only=False
    )
    assert list(everything["step"]) == [1, 2, 3, 4]  # the final best.pt value, logged after the last epoch
    assert set(everything["run_name"]) == {"n-low"}
    no_epochs = runs.metric_history(store["uri"], [store["ids"]["s"]], ["test/mAP50-95"])
    assert list(no_epochs["step"]) == [1]  # a run without train/box_loss keeps every step


def test_plot_metric_curves_one_panel_per_metric_one_line_per_run(store):
    table = runs.runs_table(store["uri"], "YOLO12-Training")
    picked = table[table["run_name"].isin(["n-low", "n-high"])]
    history = runs.metric_history(
        store["uri"], picked, ["train/box_loss", "ultralytics/val/mAP50-95", "ultralytics/val/recall"]
    )
    labels = runs.run_labels(picked, ["train.lr0"])
    assert labels[store["ids"]["n_high"]] == "n-high (lr0=0.001)"
    fig = runs.plot_metric_curves(history, labels=labels)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["train/box_loss", "ultralytics/val/mAP50-95"]  # recall: not logged
    assert all(len(ax.lines) == 2 for ax in panels)
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == ["n-high (lr0=0.001)", "n-low (lr0=0.01)"]
    save(fig, "metric_curves")
    empty = runs.plot_metric_curves(history.iloc[0:0])
    assert "No per-epoch metrics" in empty.axes[0].texts[0].get_text()


def test_best_runs_per_model(store):
    table = runs.runs_table(store["uri"], ["YOLO12-Training", "YOLO12-Finetuning"])
    best = runs.best_runs_per_model(table, "test/mAP50-95").set_index("model")
    assert best.loc["yolo12n", "run_name"] == "tuned"  # 0.45 across experiments; the failed 0.90 left out
    assert best.loc["yolo12n", "runs"] == 3
    assert best.loc["yolo12s", "run_name"] == "s"
    assert "sweep-1" not in set(best["run_name"])
    anything = runs.best_runs_per_model(table, "test/mAP50-95", finished_only=False).set_index("model")
    assert anything.loc["yolo12n", "run_name"] == "n-failed"
    worst = runs.best_runs_per_model(table, "test/mAP50-95", direction="minimize").set_index("model")
    assert worst.loc["yolo12n", "run_name"] == "n-low"
    with pytest.raises(KeyError, match="not a column"):
        runs.best_runs_per_model(table, "val/nothing")
    with pytest.raises(ValueError, match="direction"):
        runs.best_runs_per_model(table, "test/mAP50-95", direction="up")


def test_find_sweeps_and_children(store):
    assert len(runs.find_sweeps(runs.runs_table(store["uri"]))) == 3
    table = runs.runs_table(store["uri"], "YOLO12-Training")
    sweeps = runs.find_sweeps(table)
    assert len(sweeps) == 1
    row = sweeps.iloc[0]
    assert (row["parent_run_id"], row["parent_name"], row["children"], row["finished"]) == (
        store["ids"]["parent"],
        "sweep-1",
        5,
        4,
    )
    assert runs.find_sweeps(table[table["parent_run_id"].isna()]).empty

    sweep = runs.sweep_children(store["uri"], store["ids"]["parent"])
    assert (sweep.name, sweep.objective, sweep.direction) == ("sweep-1", "val/map40", "maximize")
    assert sweep.params == ["model.name", "train.lr0"]  # model.arch varies with model.name; run_name is no param
    assert list(sweep.children["val/map40"][:4]) == pytest.approx([0.50, 0.35, 0.20, 0.10])
    assert np.isnan(sweep.children["val/map40"].iloc[4]) and sweep.children["status"].iloc[4] == "RUNNING"
    assert sweep.children["train.lr0"].dtype == float
    assert sweep.best["run_name"] == "sweep-1-2"
    assert any("1 of 5 children have no val/map40" in note for note in sweep.notes)
    lowest = runs.sweep_children(store["uri"], store["ids"]["parent"], direction="minimize")
    assert lowest.best["run_name"] == "sweep-1-3"
    with pytest.raises(ValueError, match="no child runs"):
        runs.sweep_children(store["uri"], store["ids"]["s"])


def test_sweep_settings_from_the_parent_or_the_params_alone(store):
    optuna = runs.sweep_children(store["uri"], store["ids"]["optuna"])
    # the parent's objective and search space: post.samples also differs but was not swept
    assert (optuna.objective, optuna.direction, optuna.params) == ("test/map40", "minimize", ["train.lr0"])
    assert optuna.best["run_name"] == "optuna-1"
    bare = runs.sweep_children(store["uri"], store["ids"]["bare"])
    # nothing names the swept keys: every differing param, model.arch folded into model.name
    assert (bare.objective, bare.params) == ("test/mAP50-95", ["model.name", "train.lr0"])


def test_plot_sweep_parallel_coordinates_and_scatter(store):
    sweep = runs.sweep_children(store["uri"], store["ids"]["parent"])
    fig = runs.plot_sweep(sweep)
    parallel = fig.axes[0]
    assert [t.get_text() for t in parallel.get_xticklabels()] == ["model.name", "train.lr0 (log)", "val/map40"]
    assert len([line for line in parallel.lines if len(line.get_xdata()) == 3]) == 4  # the 4 scored children
    scatters = [ax for ax in fig.axes if ax.get_xlabel() in sweep.params]
    assert [ax.get_xlabel() for ax in scatters] == sweep.params
    assert scatters[1].get_xscale() == "log"  # lr0 spans 30x
    save(fig, "sweep")
    unscored = runs.Sweep(
        "p", "empty", "val/map40", "maximize", ["train.lr0"], sweep.children.assign(**{"val/map40": np.nan})
    )
    assert "nothing to plot" in runs.plot_sweep(unscored).axes[0].texts[0].get_text()


def test_axis_positions_numeric_log_and_categorical():
    pos, ticks, log = runs._axis_positions(pd.Series([0.001, 0.01, 0.1]))
    assert log and list(pos) == pytest.approx([0.0, 0.5, 1.0]) and [t[1] for t in ticks] == ["0.001", "0.1"]
    pos, _, log = runs._axis_positions(pd.Series([1.0, 2.0, 3.0]))
    assert not log and list(pos) == pytest.approx([0.0, 0.5, 1.0])
    pos, ticks, _ = runs._axis_positions(pd.Series(["b", "a", None]))
    assert list(pos) == pytest.approx([1.0, 0.5, 0.0]) and [t[1] for t in ticks] == ["<unset>", "a", "b"]


# ---- predictions ----------------------------------------------------------------------------------


@pytest.fixture()
def split_predictions(synthetic_tiny):
    """Ground truth of the tiny synthetic test split, with one hit, one miss and one false positive."""
    from xray_exp.evaluation.dataset import load_split, read_ground_truth
    from xray_exp.imaging import read_xray

    split = load_split(synthetic_tiny, "test")
    gts = []
    for image in split.images:
        gray = read_xray(image.path)
        gts.append(read_ground_truth(image, gray.shape[1], gray.shape[0]))
    preds = []
    for k, gt in enumerate(gts):
        boxes, labels, scores = np.zeros((0, 4)), np.zeros(0, int), np.zeros(0)
        if k == 0 and len(gt["labels"]):  # a hit on the first box, and a confident false positive
            boxes = np.array([gt["boxes"][0], [2.0, 2.0, 20.0, 20.0]])
            labels, scores = np.array([gt["labels"][0], gt["labels"][0]]), np.array([0.9, 0.8])
        preds.append({"image_id": gt["image_id"], "boxes": boxes, "labels": labels, "scores": scores})
    return SplitPredictions(split.names, preds, gts)


def test_per_class_table_counts(split_predictions):
    result = evaluate_records(split_predictions.preds, split_predictions.gts, split_predictions.names)
    table = P.per_class_table(result)
    assert list(table.index) == split_predictions.names
    hit_class = split_predictions.names[int(split_predictions.gts[0]["labels"][0])]
    instances = sum(len(g["labels"]) for g in split_predictions.gts)
    assert table["instances"].sum() == instances
    assert table.loc[hit_class, "TP"] == 1 and table.loc[hit_class, "FP"] == 1
    assert table["TP"].sum() == 1 and table["FN"].sum() == instances - 1
    assert table.loc[hit_class, "precision"] == pytest.approx(0.5)
    assert (table["FN"] == table["instances"] - table["TP"]).all()
    fig = P.plot_per_class(table)
    assert len(fig.axes[0].patches) == 4 * len(table)
    save(fig, "per_class")


def test_pick_images_most_findings_then_a_normal_one():
    gts = [{"image_id": i, "labels": np.zeros(n)} for i, n in (("a", 1), ("b", 0), ("c", 3), ("d", 2), ("e", 0))]
    split = SplitPredictions(["x"], [], gts)
    assert P.pick_images(split, 3) == ["c", "d", "b"]
    assert P.pick_images(split, 1) == ["c"]
    assert P.pick_images(split, 10) == ["c", "d", "a", "b", "e"]
    only_normal = SplitPredictions(["x"], [], [g for g in gts if not len(g["labels"])])
    assert P.pick_images(only_normal, 2) == ["b", "e"]


def test_plot_predictions_side_by_side(split_predictions):
    first = split_predictions.gts[0]["image_id"]
    fig = P.plot_predictions(split_predictions, [first], conf=0.85)
    gt_ax, pred_ax = image_axes(fig)
    assert len(gt_ax.patches) == len(split_predictions.gts[0]["labels"])
    assert len(pred_ax.patches) == 1 and pred_ax.get_title() == "predictions >= 0.85: 1, top score 0.900"
    hit_class = split_predictions.names[int(split_predictions.gts[0]["labels"][0])]
    assert [t.get_text() for t in pred_ax.texts] == [f"{hit_class} 0.90"]
    fig = P.plot_predictions(split_predictions, n=3, conf=0.5)
    assert len(image_axes(fig)) == 6
    save(fig, "predictions")
    with pytest.raises(KeyError, match="not images of this split"):
        P.plot_predictions(split_predictions, ["nope"])


def test_plot_errors_galleries(split_predictions):
    result = evaluate_records(split_predictions.preds, split_predictions.gts, split_predictions.names)
    fp = P.plot_errors(result, split_predictions, "FP")
    assert len(image_axes(fp)) == len(result.false_positives) == 1
    assert image_axes(fp)[0].get_title().startswith("FP ") and "0.800" in image_axes(fp)[0].get_title()
    fn = P.plot_errors(result, split_predictions, "FN", k=3)
    assert len(image_axes(fn)) == 3 and all(ax.get_title().startswith("FN ") for ax in image_axes(fn))
    save(fn, "missed_lesions")
    exact = [{**g, "scores": np.ones(len(g["labels"]))} for g in split_predictions.gts]
    perfect = evaluate_records(exact, split_predictions.gts, split_predictions.names)
    assert "No false positives" in P.plot_errors(perfect, split_predictions, "FP").axes[0].texts[0].get_text()
    with pytest.raises(ValueError, match="kind"):
        P.plot_errors(result, split_predictions, "TP")


def test_load_registered_model_names_a_missing_model(store, tmp_path):
    from xray_exp.errors import ModelError

    with pytest.raises(ModelError, match="no model version nope@development"):
        P.load_registered_model("nope", "development", store["uri"], dst=tmp_path)
    with pytest.raises(FileNotFoundError, match="no MLflow store"):
        P.load_registered_model("yolo12n", "development", f"sqlite:///{tmp_path / 'missing.db'}")


def test_score_text_keeps_small_scores_readable():
    assert [P.score_text(s) for s in (0.912, 0.1, 0.05, 0.0031)] == ["0.91", "0.10", "0.05", "0.0031"]


def test_predict_needs_a_data_yaml(tmp_path):
    model = P.RegisteredModel("yolo12n", "development", "1", tmp_path, ["a"], 128, None, None)
    with pytest.raises(ValueError, match="pass data_yaml"):
        P.predict(model, None)
    assert P._training_data_yaml(None, None) is None
    assert model.describe()["data.yaml"] == "(not on this machine)"


# ---- dataset --------------------------------------------------------------------------------------


@pytest.fixture()
def tiny_dataset(tmp_path) -> Path:
    """train: a 200x100 image with two boxes, a 64x64 normal image without a label file;
    val: a 100x100 image with one polygon label (its bounding box)."""
    from PIL import Image

    def image(split, name, size, labels=None):
        (tmp_path / "images" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size[1], size[0]), 90, np.uint8)).save(tmp_path / "images" / split / f"{name}.png")
        if labels is not None:
            (tmp_path / "labels" / split).mkdir(parents=True, exist_ok=True)
            (tmp_path / "labels" / split / f"{name}.txt").write_text(labels)

    image("train", "t1", (200, 100), "0 0.25 0.5 0.1 0.2\n1 0.75 0.5 0.5 0.8\n")
    image("train", "t2", (64, 64))
    image("val", "v1", (100, 100), "1 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6\n")
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [nodule, effusion]\n")
    return tmp_path / "data.yaml"


def test_load_dataset_tables(tiny_dataset):
    data = D.load_dataset(tiny_dataset)
    assert data.splits == ["train", "val"] and data.names == ["nodule", "effusion"]
    assert list(data.images[["image_id", "width", "height", "boxes"]].itertuples(index=False, name=None)) == [
        ("t1", 200, 100, 2),
        ("t2", 64, 64, 0),
        ("v1", 100, 100, 1),
    ]
    nodule = data.boxes.iloc[0]
    assert nodule["class"] == "nodule"
    assert [nodule[k] for k in ("x1", "y1", "x2", "y2", "w_px", "h_px")] == pytest.approx([40, 40, 60, 60, 20, 20])
    assert nodule["sqrt_area_px"] == pytest.approx(20) and nodule["aspect"] == pytest.approx(1.0)
    polygon = data.boxes.iloc[2]
    assert [polygon[k] for k in ("x1", "y1", "x2", "y2")] == pytest.approx([10, 10, 50, 60])


def test_split_summary_class_balance_box_stats(tiny_dataset):
    data = D.load_dataset(tiny_dataset)
    summary = D.split_summary(tiny_dataset)  # a path works as well as the tables
    assert summary.loc["train", ["images", "normal_images", "abnormal_images", "boxes"]].tolist() == [2, 1, 1, 2]
    assert summary.loc["all", "boxes"] == 3 and summary.loc["val", "image_sizes"] == "100x100 (1)"
    assert summary.loc["train", "boxes_per_abnormal_image"] == 2.0

    boxes = D.class_balance(data)
    assert boxes.loc["effusion", ["train", "val", "all"]].tolist() == [1, 1, 2]
    assert boxes["share"].sum() == pytest.approx(1.0, abs=1e-3)
    images = D.class_balance(data, count="images")
    assert images.loc[D.NORMAL, ["train", "val", "all"]].tolist() == [1, 0, 1]
    assert images.loc["effusion", "share"] == pytest.approx(2 / 3, abs=1e-3)
    with pytest.raises(ValueError, match="count"):
        D.class_balance(data, count="pixels")

    stats = D.box_stats(data)
    assert stats.loc["nodule", ["boxes", "small", "medium", "large"]].tolist() == [1, 1, 0, 0]
    assert stats.loc["effusion", "boxes"] == 2 and stats.loc["all", "boxes"] == 3
    assert stats.loc["effusion", "medium"] == 2  # 100x80 px -> sqrt 89; 40x50 -> sqrt 45
    assert stats.loc["nodule", "median_w_rel"] == pytest.approx(0.1)


def test_dataset_figures(tiny_dataset, synthetic_tiny):
    data = D.load_dataset(tiny_dataset)
    balance = D.plot_class_balance(data)
    assert [ax.get_title() for ax in balance.axes] == ["Boxes per class", "Images per class"]
    assert [t.get_text() for t in balance.axes[1].get_yticklabels()] == ["nodule", "effusion", D.NORMAL]
    sizes = D.plot_box_sizes(data)
    assert len(sizes.axes[0].collections) == 2  # one scatter per class with boxes
    positions = D.plot_box_positions(data)
    assert [ax.get_title() for ax in positions.axes if ax.axison] == ["nodule (1 boxes)", "effusion (2 boxes)"]
    examples = D.plot_examples(data, "train")
    titles = [ax.get_title() for ax in image_axes(examples)]
    assert titles == ["t1\nnodule, effusion", "t2\nno findings"]
    with pytest.raises(ValueError, match="split 'test'"):
        D.plot_examples(data, "test")
    synthetic = D.load_dataset(synthetic_tiny)
    for name, fig in (
        ("class_balance", D.plot_class_balance(synthetic)),
        ("box_sizes", D.plot_box_sizes(synthetic)),
        ("box_positions", D.plot_box_positions(synthetic)),
        ("examples", D.plot_examples(synthetic)),
    ):
        save(fig, name)


def test_example_images_one_per_class_then_normal(synthetic_tiny):
    data = D.load_dataset(synthetic_tiny)
    ids = D.example_images(data, "train", 8)
    train = data.boxes[data.boxes["split"] == "train"]
    first_classes = [set(train[train["image_id"] == i]["class"]) for i in ids[:4]]
    for name, found in zip(data.names, first_classes, strict=True):
        assert name in found
    assert len(ids) == len(set(ids)) == 8


def test_empty_dataset_figures_say_so(tmp_path):
    from PIL import Image

    (tmp_path / "images" / "train").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "images" / "train" / "a.png")
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\nnames: [nodule]\n")
    data = D.load_dataset(tmp_path / "data.yaml")
    assert data.boxes.empty and D.split_summary(data).loc["all", "normal_images"] == 2
    assert "No boxes" in D.plot_box_sizes(data).axes[0].texts[0].get_text()
    assert "No boxes" in D.plot_box_positions(data).axes[0].texts[0].get_text()


def test_default_data_yaml_is_the_training_default(tmp_path, monkeypatch):
    seen = {}

    def fake(cache_dir, **spec):
        seen.update(cache_dir=Path(cache_dir), spec=spec)
        return Path(cache_dir) / "data.yaml"

    monkeypatch.setattr("xray_exp.data.synthetic.ensure_synthetic_dataset", fake)
    assert D.default_data_yaml(tmp_path) == tmp_path / "outputs" / ".cache" / "datasets" / "data.yaml"
    assert seen == {"cache_dir": tmp_path / "outputs" / ".cache" / "datasets", "spec": {}}  # the schema's defaults
