"""MLflow runs as pandas tables and matplotlib figures (notebooks/01_runs.ipynb).

    from xray_exp.analysis import runs
    uri = default_tracking_uri()               # xray_exp.mlops.client: $MLFLOW_TRACKING_URI, else outputs/mlflow.db
    table = runs.runs_table(uri, "YOLO12-Training")     # one row per run: model, key params, final metrics
    history = runs.metric_history(uri, table, ["ultralytics/val/mAP50-95", "train/box_loss"])   # per epoch
    runs.plot_metric_curves(history, labels=runs.run_labels(table, ["train.lr0"]))  # one panel per metric
    runs.best_runs_per_model(table, "test/mAP50-95")    # the best finished run of each model
    for parent_id in runs.find_sweeps(table).parent_run_id:      # sweeps: parent runs with child runs
        sweep = runs.sweep_children(uri, parent_id)     # children, the parameters that vary, the objective
        runs.plot_sweep(sweep)                          # parallel coordinates + each parameter vs objective

Params are the flattened training config (`model.name`, `train.lr0`, ...); numeric-looking columns become
numbers. Per-epoch curves keep the steps at which `train/box_loss` was logged (one per training epoch):
the final best.pt numbers that training logs one step after the last epoch are left out. A sweep
(`python -m xray_exp.train --multirun sweep=...`, xray_exp.sweep) is a parent run whose children carry the
`mlflow.parentRunId` tag; its objective and search space come from the parent's params and tags.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from xray_exp.analysis.common import blank_figure, hide_unused, message_figure, new_figure
from xray_exp.mlops.parent_runs import PARENT_TAG, list_children
from xray_exp.mlops.query import experiment_ids, metric_steps, open_store, search_all_runs

EPOCH_METRIC = "train/box_loss"  # logged once per training epoch, never at the final step
DEFAULT_PARAMS = (
    "train.epochs",
    "train.imgsz",
    "train.lr0",
    "train.optimizer",
    "hardware.batch",
    "dataset.name",
    "augmentation.name",
)
# val/* and test/*: xray_exp.metrics on best.pt after training; ultralytics/val/*: Ultralytics' validator
# (per epoch: the only per-epoch detection figures).
DEFAULT_METRICS = (
    "test/mAP50-95",
    "test/mAP50",
    "test/map40",
    "test/froc_mean",
    "test/auroc",
    "val/mAP50-95",
    "val/map40",
)
CURVE_METRICS = (
    "train/box_loss",
    "ultralytics/val/box_loss",
    "ultralytics/val/mAP50",
    "ultralytics/val/mAP50-95",
    "ultralytics/val/precision",
    "ultralytics/val/recall",
)
NOT_SWEPT = frozenset({"run_name", "tracking.tracking_uri", "resume"})
RUN_COLUMNS = [
    "experiment",
    "run_name",
    "model",
    "mode",
    "status",
    "start_time",
    "duration_s",
    "run_id",
    "parent_run_id",
    "is_parent",
]


def experiments(tracking_uri: str) -> pd.DataFrame:
    """The store's active experiments with their run counts."""
    client = open_store(tracking_uri)
    rows = [
        {
            "experiment": e.name,
            "experiment_id": e.experiment_id,
            "runs": len(search_all_runs(client, [e.experiment_id])),
        }
        for e in client.search_experiments()
    ]
    return pd.DataFrame(rows, columns=["experiment", "experiment_id", "runs"])


def _numeric_columns(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Params are strings: turn a column into numbers when every value that is set parses as one."""
    for col in columns:
        values = frame[col].replace({"None": None, "null": None, "": None})
        numbers = pd.to_numeric(values, errors="coerce")
        frame[col] = numbers if numbers.notna().sum() == values.notna().sum() else values
    return frame


def _run_row(run, experiment: str) -> dict:
    info, data = run.info, run.data
    mode = data.tags.get("mode") or data.params.get("mode") or ""
    return {
        "experiment": experiment,
        "run_name": info.run_name,
        "model": data.tags.get("model") or data.params.get("model.name"),
        "mode": mode.removeprefix("Mode."),
        "status": info.status,
        "start_time": pd.to_datetime(info.start_time, unit="ms") if info.start_time else pd.NaT,
        "duration_s": (info.end_time - info.start_time) / 1000 if info.end_time and info.start_time else np.nan,
        "run_id": info.run_id,
        "parent_run_id": data.tags.get(PARENT_TAG),
    }


def runs_table(
    tracking_uri: str,
    experiment: str | Sequence[str] | None = None,
    params: Sequence[str] = DEFAULT_PARAMS,
    metrics: Sequence[str] = DEFAULT_METRICS,
    all_columns: bool = False,
) -> pd.DataFrame:
    """One row per run, newest first: experiment, run_name, model, mode, status, start_time, duration_s, run_id,
    parent_run_id, is_parent, then `params` and `metrics` (the last logged value; NaN when missing).

    experiment: a name, a list of names or None (every experiment); all_columns: every param and metric.
    """
    client = open_store(tracking_uri)
    ids = experiment_ids(client, experiment)
    found = search_all_runs(client, list(ids)) if ids else []
    if all_columns:
        params = sorted({k for r in found for k in r.data.params})
        metrics = sorted({k for r in found for k in r.data.metrics})
    rows = []
    for run in found:
        row = _run_row(run, ids[run.info.experiment_id])
        row.update({p: run.data.params.get(p) for p in params})
        row.update({m: run.data.metrics.get(m, np.nan) for m in metrics})
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *params, *metrics])
    table["is_parent"] = table["run_id"].isin(set(table["parent_run_id"].dropna()))
    table[list(metrics)] = table[list(metrics)].astype(float)
    table = _numeric_columns(table, params)
    return table.sort_values("start_time", ascending=False, ignore_index=True)


def run_labels(table: pd.DataFrame, params: Sequence[str] = ()) -> dict[str, str]:
    """{run_id: 'run_name (param=value, ...)'} for legends."""
    labels = {}
    for _, row in table.iterrows():
        extra = ", ".join(
            f"{p.rsplit('.', 1)[-1]}={row[p]:g}"
            if isinstance(row[p], float | int)
            else f"{p.rsplit('.', 1)[-1]}={row[p]}"
            for p in params
            if p in row
        )
        labels[row["run_id"]] = f"{row['run_name']} ({extra})" if extra else str(row["run_name"])
    return labels


def metric_history(
    tracking_uri: str,
    runs: pd.DataFrame | Iterable[str],
    metrics: Sequence[str] = CURVE_METRICS,
    epochs_only: bool = True,
) -> pd.DataFrame:
    """Long table run_id, run_name, metric, step, value (step = epoch) for these runs (a runs_table or run ids).

    epochs_only: keep only the steps at which `train/box_loss` was logged (drops the final best.pt numbers
    logged after the last epoch); runs without it keep every step.
    """
    client = open_store(tracking_uri)
    if isinstance(runs, pd.DataFrame):
        names = dict(zip(runs["run_id"], runs["run_name"], strict=True))
    else:
        names = {run_id: client.get_run(run_id).info.run_name for run_id in runs}
    rows = []
    for run_id, run_name in names.items():
        epochs = {step for step, _ in metric_steps(client, run_id, EPOCH_METRIC)} if epochs_only else set()
        for metric in metrics:
            for step, value in metric_steps(client, run_id, metric):
                if not epochs or step in epochs:
                    rows.append(
                        {"run_id": run_id, "run_name": run_name, "metric": metric, "step": step, "value": value}
                    )
    history = pd.DataFrame(rows, columns=["run_id", "run_name", "metric", "step", "value"])
    # a value logged twice at one step (a resumed run): keep the last
    return history.drop_duplicates(["run_id", "metric", "step"], keep="last").sort_values(
        ["metric", "run_id", "step"], ignore_index=True
    )


def plot_metric_curves(
    history: pd.DataFrame, metrics: Sequence[str] | None = None, labels: dict[str, str] | None = None, cols: int = 3
):
    """One panel per metric, one line per run (x: epoch); `labels` {run_id: legend text}."""
    from matplotlib.lines import Line2D

    metrics = [m for m in (metrics or dict.fromkeys(history["metric"])) if m in set(history["metric"])]
    if not metrics:
        return message_figure("No per-epoch metrics logged for these runs.")
    cols = min(cols, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = new_figure(rows, cols, width=4.6 * cols, height=3.4 * rows + 0.8)
    run_ids = list(dict.fromkeys(history["run_id"]))
    colors = {run_id: f"C{k % 10}" for k, run_id in enumerate(run_ids)}
    for ax, metric in zip(axes.flat, metrics, strict=False):
        part = history[history["metric"] == metric]
        for run_id, curve in part.groupby("run_id", sort=False):
            ax.plot(curve["step"], curve["value"], "o-", color=colors[run_id], markersize=3, linewidth=1.5)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    hide_unused(axes, len(metrics))
    names = dict(zip(history["run_id"], history["run_name"], strict=False))
    handles = [Line2D([], [], marker="o", color=colors[r]) for r in run_ids]
    legend = [(labels or {}).get(r, names[r]) for r in run_ids]
    fig.legend(handles, legend, loc="lower center", ncol=min(len(run_ids), 3), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 + 0.03 * math.ceil(len(run_ids) / 3), 1, 1))
    return fig


def best_runs_per_model(
    table: pd.DataFrame, objective: str = "test/mAP50-95", direction: str = "maximize", finished_only: bool = True
) -> pd.DataFrame:
    """The best run of each model on `objective` (a metric column of `table`); sweep parents are left out."""
    if objective not in table.columns:
        raise KeyError(
            f"objective {objective!r} is not a column of the runs table; pass it in runs_table(metrics=...)"
            f" (metric columns: {', '.join(c for c in table.columns if '/' in c)})"
        )
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be maximize or minimize, got {direction!r}")
    keep = table[objective].notna() & ~table["is_parent"]
    if finished_only:
        keep &= table["status"] == "FINISHED"
    ranked = table[keep].sort_values(objective, ascending=direction == "minimize", kind="mergesort")
    best = ranked.groupby("model", sort=False).head(1)
    counts = table[keep].groupby("model").size().rename("runs")
    best = best.join(counts, on="model")
    front = ["model", "runs", objective, "run_name", "experiment", "run_id"]
    return best[front + [c for c in best.columns if c not in front]].reset_index(drop=True)


def find_sweeps(table: pd.DataFrame) -> pd.DataFrame:
    """Parent runs with children in `table`: parent_run_id, parent_name, experiment, children, finished, newest."""
    children = table[table["parent_run_id"].notna()]
    columns = ["parent_run_id", "parent_name", "experiment", "children", "finished", "newest"]
    if children.empty:
        return pd.DataFrame(columns=columns)
    names = dict(zip(table["run_id"], table["run_name"], strict=True))
    sweeps = (
        children.groupby("parent_run_id")
        .agg(
            experiment=("experiment", "first"),
            children=("run_id", "size"),
            finished=("status", lambda s: int((s == "FINISHED").sum())),
            newest=("start_time", "max"),
        )
        .reset_index()
    )
    sweeps["parent_name"] = sweeps["parent_run_id"].map(names)
    return sweeps[columns].sort_values("newest", ascending=False, ignore_index=True)


@dataclass
class Sweep:
    """The child runs of one sweep and what varies between them."""

    parent_run_id: str
    name: str
    objective: str
    direction: str
    params: list[str]  # the parameters that vary across children (duplicates of another one left out)
    children: pd.DataFrame  # run_id, run_name, status, <params>, <objective>; best first
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> pd.Series | None:
        scored = self.children[self.children[self.objective].notna()]
        return None if scored.empty else scored.iloc[0]


def _swept_keys(parent, children: list) -> set[str]:
    """Override keys the sweep varies: the parent's `sweep.search_space` tag (xray_exp.sweep) and the keys
    of the children's Hydra overrides (tag `hydra.overrides`)."""
    keys: set[str] = set()
    try:
        keys |= set(json.loads(parent.data.tags.get("sweep.search_space") or "{}"))
    except (ValueError, TypeError):
        pass
    for run in children:
        keys |= {
            item.split("=", 1)[0].lstrip("+~")
            for item in run.data.tags.get("hydra.overrides", "").split()
            if "=" in item
        }
    return keys


def _varied_params(children: list, swept: set[str]) -> list[str]:
    """The swept parameters: params whose values differ between children and that `swept` names (a
    config-group choice `model=yolo12s` names `model.name`). Without such names: every differing param,
    keeping one (`.name` first) of the params of a config group that vary in lockstep (model.name, model.arch)."""
    keys = sorted({k for r in children for k in r.data.params} - NOT_SWEPT)
    values = pd.DataFrame([{k: r.data.params.get(k) for k in keys} for r in children], columns=keys)
    varied = [k for k in keys if values[k].nunique(dropna=False) > 1]
    named = {key if key in keys else f"{key}.name" for key in swept}
    chosen = [k for k in varied if k in named]
    if chosen:
        return chosen
    varied.sort(key=lambda k: (not k.endswith(".name"), k))
    kept, seen = [], set()
    for k in varied:
        pattern = (k.split(".", 1)[0], tuple(pd.factorize(values[k].fillna("<unset>"))[0]))
        if pattern not in seen:
            seen.add(pattern)
            kept.append(k)
    return sorted(kept)


def _sweep_setting(parent, children: list, param: str, default: str) -> str:
    """The parent's param (xray_exp.sweep logs objective.*), else the children's most common value."""
    if parent.data.params.get(param):
        return parent.data.params[param]
    values = pd.Series([r.data.params.get(param) for r in children]).dropna()
    return values.mode().iloc[0] if not values.empty else default


def sweep_children(
    tracking_uri: str, parent_run_id: str, objective: str | None = None, direction: str | None = None
) -> Sweep:
    """The children of sweep `parent_run_id` (any experiment). The objective defaults to the parent's
    `objective.metric` param (xray_exp.sweep), else the children's (their training config), else
    test/mAP50-95; direction likewise. The parameters shown are those the sweep varied (see _varied_params)."""
    client = open_store(tracking_uri)
    parent = client.get_run(parent_run_id)
    found = list_children(client, parent_run_id)
    notes = []
    if not found:
        raise ValueError(f"run {parent_run_id} ({parent.info.run_name}) has no child runs")
    objective = objective or _sweep_setting(parent, found, "objective.metric", "test/mAP50-95")
    direction = direction or _sweep_setting(parent, found, "objective.direction", "maximize")
    params = _varied_params(found, _swept_keys(parent, found))
    if not params:
        notes.append("the children share every parameter (repeats of one configuration?)")
    rows = []
    for run in found:
        row = {"run_id": run.info.run_id, "run_name": run.info.run_name, "status": run.info.status}
        row.update({p: run.data.params.get(p) for p in params})
        row[objective] = run.data.metrics.get(objective, np.nan)
        rows.append(row)
    children = _numeric_columns(
        pd.DataFrame(rows, columns=["run_id", "run_name", "status", *params, objective]), params
    )
    children[objective] = children[objective].astype(float)
    missing = int(children[objective].isna().sum())
    if missing:
        notes.append(f"{missing} of {len(children)} children have no {objective} (failed or still running)")
    children = children.sort_values(
        objective, ascending=direction == "minimize", na_position="last", kind="mergesort", ignore_index=True
    )
    return Sweep(parent_run_id, parent.info.run_name or parent_run_id, objective, direction, params, children, notes)


def _axis_positions(values: pd.Series) -> tuple[np.ndarray, list[tuple[float, str]], bool]:
    """Values -> positions in [0, 1], tick (position, text) pairs, and whether the axis is logarithmic."""
    if pd.api.types.is_numeric_dtype(values):
        v = values.astype(float).to_numpy()
        finite = v[np.isfinite(v)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        log = lo > 0 and hi / lo >= 20
        f = np.log10 if log else (lambda x: x)
        span = f(hi) - f(lo)
        pos = (f(np.where(np.isfinite(v), v, lo)) - f(lo)) / span if span > 0 else np.full(len(v), 0.5)
        ticks = [(0.0, f"{lo:.3g}"), (1.0, f"{hi:.3g}")] if span > 0 else [(0.5, f"{lo:.3g}")]
        return pos, ticks, log
    cats = sorted(values.fillna("<unset>").astype(str).unique())
    codes = values.fillna("<unset>").astype(str).map({c: k for k, c in enumerate(cats)}).to_numpy(dtype=float)
    n = len(cats)
    pos = codes / (n - 1) if n > 1 else np.full(len(codes), 0.5)
    ticks = [(k / (n - 1) if n > 1 else 0.5, c) for k, c in enumerate(cats)]
    return pos, ticks, False


def plot_sweep(sweep: Sweep, cols: int = 3):
    """Parallel coordinates (one line per child, coloured by the objective) above one scatter per parameter."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    scored = sweep.children[sweep.children[sweep.objective].notna()].reset_index(drop=True)
    if scored.empty or not sweep.params:
        why = "no child has the objective yet" if scored.empty else "no parameter varies between the children"
        return message_figure(f"Sweep {sweep.name}: nothing to plot ({why}).")
    params, objective = sweep.params, sweep.objective
    cols = min(cols, len(params))
    scatter_rows = math.ceil(len(params) / cols)
    fig = blank_figure(width=max(9.0, 1.9 * (len(params) + 1) + 2), height=4.2 + 3.2 * scatter_rows)
    grid = fig.add_gridspec(1 + scatter_rows, cols, height_ratios=[1.35] + [1.0] * scatter_rows)
    values = scored[objective].to_numpy(dtype=float)
    lo, hi = values.min(), values.max()
    pad = 0.0 if hi > lo else max(abs(lo) * 0.1, 0.05)  # one value for all: a plain colour scale around it
    norm = Normalize(lo - pad, hi + pad)
    cmap = colormaps["viridis"] if sweep.direction == "maximize" else colormaps["viridis_r"]
    best = int(np.argmax(values) if sweep.direction == "maximize" else np.argmin(values))

    ax = fig.add_subplot(grid[0, :])
    axes_cols = [*params, objective]
    placed = [_axis_positions(scored[c]) for c in axes_cols]
    ys = np.stack([p[0] for p in placed], axis=1)
    xs = np.arange(len(axes_cols))
    for k in np.argsort(-np.abs(np.arange(len(scored)) - best)):  # the best line drawn last, on top
        ax.plot(
            xs,
            ys[k],
            color=cmap(norm(values[k])),
            linewidth=3.0 if k == best else 1.3,
            alpha=1.0 if k == best else 0.75,
            marker="o",
            markersize=3,
        )
    for axis_x, (_, ticks, _) in zip(xs, placed, strict=True):
        ax.axvline(axis_x, color="grey", linewidth=0.8)
        for y, text in ticks:
            ax.text(
                axis_x + 0.03,
                y,
                text,
                fontsize=7,
                va="center",
                ha="left",
                bbox={"facecolor": "white", "alpha": 0.7, "pad": 0.5, "edgecolor": "none"},
            )
    ax.set_xticks(xs, [f"{c} (log)" if p[2] else c for c, p in zip(axes_cols, placed, strict=True)], fontsize=9)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(axes_cols) - 0.6)
    ax.set_ylim(-0.08, 1.08)
    ax.set_title(
        f"Sweep {sweep.name}: {len(scored)} children, {objective} ({sweep.direction}); "
        f"best {values[best]:.4g} = {scored['run_name'][best]}",
        fontsize=10,
    )
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=objective, pad=0.01)

    for k, param in enumerate(params):
        sub = fig.add_subplot(grid[1 + k // cols, k % cols])
        x, ticks, log = _axis_positions(scored[param])
        if pd.api.types.is_numeric_dtype(scored[param]):
            x = scored[param].to_numpy(dtype=float)
            if log:
                sub.set_xscale("log")
        else:
            sub.set_xticks([t[0] for t in ticks], [t[1] for t in ticks], fontsize=8, rotation=20)
            sub.set_xlim(-0.25, 1.25)
        sub.scatter(x, values, c=values, cmap=cmap, norm=norm, s=30, edgecolors="black", linewidths=0.4)
        sub.scatter(
            [x[best]],
            [values[best]],
            marker="*",
            s=180,
            facecolors="none",
            edgecolors="red",
            linewidths=1.2,
            label="best",
        )
        sub.set(xlabel=param, ylabel=objective)
        sub.grid(alpha=0.3)
    fig.tight_layout()
    return fig
