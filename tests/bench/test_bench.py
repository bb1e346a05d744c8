"""The benchmarks' measuring helpers (xray_exp.bench): statistics, interleaving, JSON, timing callbacks,
argument construction and the GPU benchmark's skip path. No timed assertions: the figures themselves are
checked by the benchmark commands (python -m xray_exp.bench <name>), not here.

    .venv/bin/pytest tests/bench/test_bench.py
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import types
from pathlib import Path

import pytest

from xray_exp.bench import BENCHMARKS, common, gpu, inference, instrument, loader, overhead, prepare, startup
from xray_exp.bench import __main__ as bench_main

# ---------------------------------------------------------------- common


def test_median_and_summary_ignore_missing_values():
    assert common.median([3, None, 1, float("nan"), 2]) == 2
    assert math.isnan(common.median([]))
    s = common.summarize([4.0, 1.0, 3.0, 2.0])
    assert (s["n"], s["median"], s["min"], s["max"], s["mean"]) == (4, 2.5, 1.0, 4.0, 2.5)
    assert s["q1"] <= s["median"] <= s["q3"]
    assert common.summarize([])["n"] == 0 and math.isnan(common.summarize([])["median"])
    assert common.summarize([5.0])["q1"] == common.summarize([5.0])["q3"] == 5.0


def test_ratio_and_paired_ratios():
    assert common.ratio(3, 2) == 1.5
    assert math.isnan(common.ratio(1, 0)) and math.isnan(common.ratio(float("nan"), 1))
    assert common.paired_ratios([2, 3, None, 4], [1, 3, 5, 0]) == [2.0, 1.0]  # missing side and /0 dropped
    with pytest.raises(ValueError):
        common.paired_ratios([1, 2], [1])


def test_interleave_orders():
    assert list(common.interleave(["A", "B"], 3)) == [("A", 0), ("B", 0), ("A", 1), ("B", 1), ("A", 2), ("B", 2)]
    abba = [label for label, _ in common.interleave(["A", "B", "C"], 3, order="abba")]
    assert abba == ["A", "B", "C", "C", "B", "A", "A", "B", "C"]
    assert list(common.interleave(["A"], 0)) == []
    with pytest.raises(ValueError):
        list(common.interleave(["A", "B"], 2, order="random"))


def test_verdict():
    assert common.verdict(1.01, 1.03) == "PASS" and common.verdict(1.04, 1.03) == "FAIL"
    assert common.verdict(1.6, 1.5, higher_is_better=True) == "PASS"
    assert common.verdict(1.2, 1.5, higher_is_better=True) == "FAIL"
    assert common.verdict(float("nan"), 1.0) == "NO DATA"


def test_cpu_model_from_cpuinfo():
    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n"
    assert common.cpu_model(text) == "AMD EPYC 7B13 64-Core Processor"
    info = common.machine_info()
    assert info["logical_cpus"] >= 1 and info["usable_cpus"] >= 1 and info["cpu_model"]


def test_write_result_names_files_and_writes_strict_json(tmp_path):
    now = dt.datetime(2026, 11, 26, 9, 30, 5)
    payload = {"ratio": float("nan"), "path": Path("/x/y"), "nested": [1.5, float("inf")]}
    first = common.write_result("overhead", payload, tmp_path, now=now)
    second = common.write_result("overhead", payload, tmp_path, now=now)
    assert first.name == "overhead-20261126-093005.json" and second.name == "overhead-20261126-093005-2.json"
    data = json.loads(first.read_text())  # strict JSON: NaN/inf became null
    assert data == {"ratio": None, "path": "/x/y", "nested": [1.5, None]}
    assert not list(tmp_path.glob(".*.tmp"))


def test_envelope_and_command_line(monkeypatch, tmp_path):
    monkeypatch.setenv("XRAY_EXP_ROOT", str(tmp_path))
    assert common.default_out_dir() == tmp_path.resolve() / "outputs" / "bench"
    env = common.envelope("startup", ["--reps", "3"], {"reps": 3}, {"x": 1}, started=0.0)
    assert env["command"] == "python -m xray_exp.bench startup --reps 3"
    assert env["benchmark"] == "startup" and env["results"] == {"x": 1} and "cpu_model" in env["machine"]


def test_format_table():
    table = common.format_text_table(["a", "value"], [["x", 1234.5], ["long name", None], ["y", 0.01234]])
    lines = table.splitlines()
    assert lines[0].startswith("| a ") and set(lines[1]) <= {"|", "-", " "}
    assert "1234" in lines[2] and "| -" in lines[3] and "0.0123" in lines[4]
    assert len({len(line) for line in lines}) == 1  # aligned


def test_run_process_reports_exit_code_and_times(tmp_path):
    log = tmp_path / "out.log"
    t = common.run_process([sys.executable, "-c", "print('hi'); raise SystemExit(3)"], log_path=log)
    assert t.returncode == 3 and t.wall_s > 0 and t.cpu_s >= 0 and not t.timed_out
    assert "hi" in log.read_text()
    t = common.run_process([sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5)
    assert t.timed_out and t.returncode != 0


def test_dispatch(capsys):
    assert bench_main.main([]) == 0
    out = capsys.readouterr().out
    assert all(f"python -m xray_exp.bench {name}" in out for name in BENCHMARKS)
    assert bench_main.main(["nonsense"]) == 2


# ---------------------------------------------------------------- instrument


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def fake_trainer(epoch: int = 0, images: int = 64, batch: int = 16, device: str = "cpu"):
    loader = type(
        "Loader",
        (),
        {"dataset": list(range(images)), "num_workers": 2, "__len__": lambda self: math.ceil(images / batch)},
    )()
    return types.SimpleNamespace(
        epoch=epoch,
        train_loader=loader,
        batch_size=batch,
        device=device,
        amp=False,
        args=types.SimpleNamespace(cache=False, imgsz=128),
    )


def test_recorder_times_setup_and_epoch_windows():
    clock, synced, resets, peaks = FakeClock(), [], [], iter([5.0, 1.0, 3.0, 2.0, 4.0])
    rec = instrument.TrainRecorder(
        clock=clock,
        wall=clock,
        sync=synced.append,
        cpu=lambda: clock.t / 2,
        peak=lambda t: {"peak": next(peaks)},
        reset_peak=resets.append,
    )
    trainer = fake_trainer()
    cb = rec.callbacks()
    cb["on_pretrain_routine_start"](trainer)
    clock.t = 2.0
    cb["on_pretrain_routine_end"](trainer)
    for epoch, (start, end) in enumerate([(3.0, 7.0), (8.0, 10.0), (11.0, 13.0)]):
        trainer.epoch = epoch
        clock.t = start
        cb["on_train_epoch_start"](trainer)
        clock.t = end
        cb["on_train_epoch_end"](trainer)
    cb["on_train_end"](trainer)
    out = rec.to_dict(origin=0.0)
    assert out["setup_s"] == 2.0 and out["epochs_s"] == 8.0 and len(synced) == 6
    assert [e["seconds"] for e in out["epochs"]] == [4.0, 2.0, 2.0]
    assert [e["epoch"] for e in out["epochs"]] == [1, 2, 3]
    assert out["epochs"][0]["images"] == 64 and out["epochs"][0]["batches"] == 4
    assert out["first_epoch_images_per_s"] == 16.0 and out["steady_images_per_s"] == 32.0
    assert out["trainer"]["batch_size"] == 16 and out["trainer"]["loader_workers"] == 2
    assert len(resets) == 1  # after set-up (AutoBatch probing excluded from the training peak)
    assert out["memory"] == {"peak": 3.0} and out["memory_whole_call"] == {"peak": 5.0}
    assert out["epochs"][0]["cpu_s"] == 2.0 and out["epochs_cpu_s"] == 4.0
    assert out["events_s"]["pretrain_routine_end"] == 2.0
    assert list(out["events_s"]) == [
        "pretrain_routine_start",
        "pretrain_routine_end",
        "first_epoch_start",
        "last_epoch_end",
        "train_end",
    ]


def test_recorder_counts_restarted_epochs_and_ignores_stray_ends():
    clock = FakeClock()
    rec = instrument.TrainRecorder(
        clock=clock, wall=clock, sync=lambda t: None, peak=lambda t: {}, reset_peak=lambda t: None
    )
    trainer = fake_trainer()
    rec.on_train_epoch_end(trainer)  # no open window: ignored
    rec.on_train_epoch_start(trainer)
    clock.t = 1.0
    rec.on_train_epoch_start(trainer)  # OOM retry: the epoch starts again
    clock.t = 3.0
    rec.on_train_epoch_end(trainer)
    out = rec.to_dict()
    assert out["epoch_restarts"] == 1 and [e["seconds"] for e in out["epochs"]] == [2.0]


def test_epoch_throughput():
    assert instrument.epoch_throughput([]) == {
        "first_epoch_images_per_s": None,
        "steady_images_per_s": None,
        "steady_epochs": 0,
    }
    one = instrument.epoch_throughput([{"images_per_s": 10.0}])
    assert one["steady_images_per_s"] == 10.0 and one["steady_epochs"] == 1
    three = instrument.epoch_throughput([{"images_per_s": 5.0}, {"images_per_s": 20.0}, {"images_per_s": 30.0}])
    assert three["first_epoch_images_per_s"] == 5.0 and three["steady_images_per_s"] == 25.0


class FakeModel:
    """Stands in for ultralytics' Model: add_callback + train(trainer=None, **kwargs)."""

    def __init__(self, fail: bool = False):
        self.callbacks: dict[str, list] = {}
        self.fail = fail

    def add_callback(self, event, fn):
        self.callbacks.setdefault(event, []).append(fn)

    def train(self, trainer=None, **kwargs):
        if self.fail:
            raise RuntimeError("boom")
        t = fake_trainer()
        for event in (
            "on_pretrain_routine_start",
            "on_pretrain_routine_end",
            "on_train_epoch_start",
            "on_train_epoch_end",
            "on_train_end",
        ):
            for fn in self.callbacks.get(event, []):
                fn(t)
        return "done"


def test_wrap_train_records_kwargs_time_and_failures(tmp_path):
    cls = type("M", (FakeModel,), {})
    record = tmp_path / "rec.json"
    instrument.wrap_train(cls, record)
    instrument.wrap_train(cls, record)  # idempotent
    assert cls().train(epochs=2, data="/d.yaml", device=None) == "done"
    data = json.loads(record.read_text())
    assert data["ok"] and data["train_kwargs"] == {"epochs": 2, "data": "/d.yaml", "device": None}
    assert data["train_call_s"] >= 0 and len(data["epochs"]) == 1 and data["epochs"][0]["images"] == 64
    failing = type("F", (FakeModel,), {})
    instrument.wrap_train(failing, record)
    with pytest.raises(RuntimeError, match="boom"):
        failing(fail=True).train(epochs=1)
    data = json.loads(record.read_text())
    assert data["ok"] is False and data["error"] == "RuntimeError: boom"


def test_import_hook_patches_a_module_when_first_imported(tmp_path, monkeypatch):
    (tmp_path / "xray_bench_fake_mod.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    hook = instrument._PatchOnImport("xray_bench_fake_mod", lambda m: seen.append(m.VALUE))
    sys.meta_path.insert(0, hook)
    try:
        import xray_bench_fake_mod  # noqa: F401

        assert seen == [1] and hook not in sys.meta_path  # one shot
    finally:
        sys.modules.pop("xray_bench_fake_mod", None)
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)


# ---------------------------------------------------------------- overhead


def _sample(side, rep, wall, call, cpu):
    return {
        "side": side,
        "rep": rep,
        "wall_s": wall,
        "train_call_s": call,
        "outside_call_s": wall - call,
        "epochs_s": call / 2,
        "cpu_s": cpu,
    }


def test_overhead_analysis_pairs_and_verdicts():
    samples = [
        _sample("A", 0, 11.0, 8.0, 10.0),
        _sample("B", 0, 10.0, 8.0, 10.0),
        _sample("A", 1, 22.0, 16.4, 20.0),
        _sample("B", 1, 20.0, 16.0, 20.0),
        _sample("A", 2, 10.5, 8.08, 10.0),
        _sample("B", 2, 10.0, 8.0, 10.0),
    ]
    result = overhead.analyse(samples, target=1.03)
    assert result["pairs"] == 3
    assert result["ratios"]["wall_s"]["median"] == pytest.approx(1.1)  # per-pair ratios 1.1, 1.1, 1.05
    assert result["ratios"]["train_call_s"]["median"] == pytest.approx(1.01)
    assert result["verdicts"] == {"train_call": "PASS", "whole_process": "FAIL"}
    assert result["extra_seconds_A_minus_B"]["wall_s"]["median"] == pytest.approx(1.0)
    assert "training call" in overhead.overhead_report_tables(result)


def test_overhead_kwargs_difference_ignores_run_naming():
    a = {"data": "/d", "project": "/p/a", "name": "a", "batch": 8}
    assert overhead.kwargs_difference(a, {**a, "project": "/p/b", "name": "b"}) == {}
    assert overhead.kwargs_difference(a, {**a, "batch": 16, "val": False}) == {
        "batch": [8, 16],
        "val": ["<missing>", False],
    }


def test_overhead_seam_kwargs_for_both_sides(tmp_path):
    overrides = overhead.train_overrides(tmp_path / "data.yaml", epochs=2, imgsz=128, hardware="cpu", extra=[])
    assert "tracking=disabled" in overrides and "post.onnx=false" in overrides and "train.plots=false" in overrides
    from xray_exp.yolo.args import to_train_args, ultralytics_train_keys

    cfg = overhead.compose_train_config(overrides, tmp_path)
    kwargs = to_train_args(cfg, tmp_path / "data.yaml", tmp_path / "runs" / "b")
    assert kwargs["epochs"] == 2 and kwargs["imgsz"] == 128 and kwargs["device"] == "cpu" and not kwargs["plots"]
    assert set(kwargs) <= ultralytics_train_keys()
    assert cfg.model.arch == "yolo12n.yaml"


# ---------------------------------------------------------------- startup

IMPORTTIME = """import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
import time:       300 |        900 | encodings
import time:      2000 |       2000 |     omegaconf.base
import time:      5000 |     400000 | hydra
import time:       100 |     250000 |   torch._C
import time:        50 |         50 | xray_exp
"""


def test_parse_importtime_and_heavy_modules():
    entries = startup.parse_importtime(IMPORTTIME)
    assert [e["module"] for e in entries] == ["_io", "encodings", "omegaconf.base", "hydra", "torch._C", "xray_exp"]
    assert entries[0]["depth"] == 1 and entries[1]["depth"] == 0 and entries[2]["depth"] == 2
    assert startup.heavy_imports(entries) == ["torch"]
    assert startup.heavy_imports(startup.parse_importtime("nothing here")) == []
    assert startup.top_level_costs(entries)[0] == ("hydra", 400.0)
    cmds = startup.commands([["--help"], ["--cfg", "job"]])
    assert list(cmds) == ["python -c pass", "xray_exp.train --help", "xray_exp.train --cfg job"]


# ---------------------------------------------------------------- prepare


def test_prepare_worker_counts_orders_and_scaling():
    assert prepare.default_worker_counts(1) == [1]
    assert prepare.default_worker_counts(2) == [1, 2]
    assert prepare.default_worker_counts(6) == [1, 2, 4, 6]
    assert prepare.default_worker_counts(16) == [1, 2, 4, 8, 16]
    assert prepare.round_orders([1, 2, 4], 3) == [[1, 2, 4], [4, 2, 1], [1, 2, 4]]

    def run(w, ips):
        return {"workers": w, "images_per_second": ips, "wall_images_per_second": ips / 2, "wall_seconds": 1.0}

    rows = prepare.scaling_by_worker_count(
        [
            {"runs": [run(1, 10.0), run(2, 18.0)]},
            {"runs": [run(2, 22.0), run(1, 10.0)]},
            {"runs": [run(1, 12.0), run(2, 20.0)]},
        ]
    )
    assert [r["workers"] for r in rows] == [1, 2]
    assert rows[0]["convert_images_per_s"]["median"] == 10.0 and rows[1]["convert_images_per_s"]["median"] == 20.0
    assert rows[1]["speedup_convert"] == 2.0 and rows[1]["efficiency"] == 1.0


def test_prepare_workload_converts_every_image_per_worker_count():
    from xray_exp.bench.prepare_workload import measure_prepare_throughput

    result = measure_prepare_throughput(images=3, size=(160, 200), workers=[1, 2], longest_side=64)
    assert [run["workers"] for run in result["runs"]] == [1, 2]
    assert all(
        run["images"] == 3 and run["images_per_second"] > 0 and run["wall_seconds"] > 0 for run in result["runs"]
    )
    assert (result["images"], result["size"], result["longest_side"]) == (3, [160, 200], 64)
    assert prepare.scaling_by_worker_count([result])[1]["workers"] == 2


# ---------------------------------------------------------------- inference


def test_time_candidates_interleaves_and_compares():
    clock, calls = FakeClock(), []

    def make(name, cost):
        def fn():
            calls.append(name)
            clock.t += cost

        return fn

    timed = inference.time_candidates(
        {"pytorch": make("pt", 0.3), "onnxruntime": make("ort", 0.1)}, rounds=3, iters=2, warmup=1, clock=clock
    )
    assert calls[:2] == ["pt", "ort"]  # warm-up
    assert calls[2:] == ["pt", "pt", "ort", "ort", "ort", "ort", "pt", "pt", "pt", "pt", "ort", "ort"]
    assert timed["pytorch"]["latency_s"]["n"] == 6 and len(timed["pytorch"]["round_medians_s"]) == 3
    sp = inference.compare(timed, "pytorch", "onnxruntime")
    assert sp["median"] == pytest.approx(3.0) and sp["ratio_of_medians"] == pytest.approx(3.0)


def test_ultralytics_cpu_threads():
    assert [inference.ultralytics_cpu_threads(n) for n in (1, 2, 4, 16)] == [1, 1, 3, 8]


# ---------------------------------------------------------------- gpu


NO_GPU = {"available": False, "torch": "2.14.1+cu130", "cuda_build": "13.0", "count": 0, "nvidia_smi": None}


def test_gpu_skips_cleanly_without_a_gpu(tmp_path, capsys):
    assert gpu.main(["--out-dir", str(tmp_path)], probe=lambda: dict(NO_GPU)) == 0
    out = capsys.readouterr().out
    assert "SKIPPED" in out and "torch.cuda.is_available() is False" in out
    (path,) = tmp_path.glob("gpu-*.json")
    data = json.loads(path.read_text())
    assert data["skipped"] is True and data["results"]["skipped"] is True
    assert "no CUDA GPU" in data["reason"] and data["command"].startswith("python -m xray_exp.bench gpu")
    assert data["settings"]["models"] == ["yolo12n", "yolo12s", "yolo12x"]


def test_gpu_skip_reason():
    assert gpu.skip_reason({"available": True, "count": 1}) is None
    reason = gpu.skip_reason(dict(NO_GPU))
    assert "torch 2.14.1+cu130" in reason and "nvidia-smi not found" in reason
    assert "probe error: boom" in gpu.skip_reason({"available": False, "error": "boom", "nvidia_smi": "/x"})


def test_nvml_target_follows_cuda_visible_devices():
    assert gpu.nvml_target(0, {}) == ("index", 0)
    assert gpu.nvml_target(1, {"CUDA_VISIBLE_DEVICES": "3,5"}) == ("index", 5)
    assert gpu.nvml_target(0, {"CUDA_VISIBLE_DEVICES": "GPU-1234-abcd"}) == ("uuid", "GPU-1234-abcd")
    with pytest.raises(ValueError):
        gpu.nvml_target(2, {"CUDA_VISIBLE_DEVICES": "0"})


def test_smi_lines_and_window_stats():
    assert gpu.parse_smi_line("87, 15342\n") == (87.0, 15342.0)
    assert gpu.parse_smi_line("[N/A], 100") is None and gpu.parse_smi_line("garbage") is None
    samples = [
        (0.5, 0.0, 1000.0, 10.0),
        (1.5, 60.0, 9000.0, 90.0),
        (2.5, 80.0, 9500.0, 100.0),
        (3.5, 0.0, 2000.0, 5.0),
        (4.5, 100.0, 9900.0, 95.0),
    ]
    stats = gpu.window_stats(samples, [(1.0, 3.0), (4.0, 5.0)])
    assert stats["samples"] == 3 and stats["gpu_util_mean"] == 80.0
    assert stats["gpu_idle_share"] == pytest.approx(0.2) and stats["gpu_memory_max_mib"] == 9900.0
    assert stats["cpu_util_mean"] == pytest.approx(95.0)
    empty = gpu.window_stats(samples, [])
    assert empty["samples"] == 0 and empty["gpu_util_mean"] is None


def test_repeat_to():
    assert gpu.repeat_to(["a", "b", "c"], 7) == ["a", "b", "c", "a", "b", "c", "a"]
    assert gpu.repeat_to(["a", "b"], 1) == ["a"]
    with pytest.raises(ValueError):
        gpu.repeat_to([], 3)


def test_gpu_variant_kwargs(tmp_path):
    from xray_exp.yolo.args import ultralytics_train_keys

    run_dir = tmp_path / "runs" / "r1"
    bare = gpu.gpu_variant_train_kwargs("bare", "yolo12n", tmp_path / "d.yaml", run_dir, 3, 640, "0")
    assert bare["val"] is False and bare["close_mosaic"] == 0 and bare["device"] == "0"
    assert not {"batch", "workers", "cache", "amp"} & set(bare)  # Ultralytics' own defaults
    assert bare["project"] == str(tmp_path / "runs") and bare["name"] == "r1"
    ref = gpu.gpu_variant_train_kwargs("reference", "yolo12n", tmp_path / "d.yaml", run_dir, 3, 640, "0")
    assert (ref["batch"], ref["workers"], ref["amp"]) == (64, 16, True)
    big = gpu.gpu_variant_train_kwargs("reference", "yolo12x", tmp_path / "d.yaml", run_dir, 3, 640, "0")
    assert big["batch"] == 32
    preset = {"batch": -1, "workers": 16, "project": "/elsewhere", "name": "p", "exist_ok": True, "val": False}
    seam = gpu.gpu_variant_train_kwargs("seam", "yolo12n", tmp_path / "d.yaml", run_dir, 3, 640, "0", preset)
    assert seam["batch"] == -1 and seam["name"] == "r1" and seam["project"] == str(tmp_path / "runs")
    for kwargs in (bare, ref, seam):
        assert set(kwargs) <= ultralytics_train_keys()
    with pytest.raises(ValueError):
        gpu.gpu_variant_train_kwargs("preset", "yolo12n", tmp_path / "d.yaml", run_dir, 3, 640, "0")
    with pytest.raises(ValueError):
        gpu.gpu_variant_train_kwargs("seam", "yolo12n", tmp_path / "d.yaml", run_dir, 3, 640, "0")


def test_gpu_preset_composes_the_hardware_preset(tmp_path):
    overrides = gpu.preset_overrides("yolo12s", tmp_path / "d.yaml", 3, 640, "default", None)
    kwargs = gpu.compose_preset_kwargs(overrides, tmp_path, tmp_path / "d.yaml", tmp_path / "runs" / "p")
    assert (kwargs["batch"], kwargs["workers"], kwargs["cache"], kwargs["amp"], kwargs["device"]) == (
        -1,
        16,
        "ram",
        True,
        "0",
    )
    assert kwargs["val"] is False and kwargs["close_mosaic"] == 0 and kwargs["epochs"] == 3
    assert kwargs["imgsz"] == 640 and kwargs["hsv_s"] == 0.7  # augmentation=default: Ultralytics' values
    on_cpu = gpu.preset_overrides("yolo12n", tmp_path / "d.yaml", 2, 128, "default", "cpu")
    assert on_cpu[-1] == "hardware.device=cpu"


def test_gpu_run_summary_and_aggregate():
    record = {
        "ok": True,
        "setup_s": 5.0,
        "train_call_s": 40.0,
        "first_epoch_images_per_s": 300.0,
        "steady_images_per_s": 600.0,
        "memory": {"cuda_max_reserved_mib": 12000.0},
        "trainer": {"batch_size": 64, "loader_workers": 16, "train_images": 4096},
        "epochs": [
            {"epoch": 1, "wall_start": 10.0, "wall_end": 20.0, "seconds": 10.0, "images": 4096},
            {"epoch": 2, "wall_start": 21.0, "wall_end": 28.0, "seconds": 7.0, "images": 4096},
        ],
    }
    samples = [
        (15.0, 30.0, 8000.0, 100.0),
        (22.0, 60.0, 15000.0, 98.0),
        (27.0, 70.0, 15500.0, 99.0),
        (29.0, 0.0, 16000.0, 20.0),
    ]
    s = gpu.summarize_run(record, samples, baseline_mib=500.0)
    assert s["gpu_util_steady"] == 65.0 and s["gpu_util_all_epochs"] == pytest.approx(160 / 3)
    assert s["gpu_memory_peak_mib"] == 15500.0 and s["gpu_memory_peak_above_idle_mib"] == 15000.0  # epochs only
    assert s["gpu_memory_peak_whole_run_mib"] == 16000.0
    assert s["batch"] == 64 and s["torch_max_reserved_mib"] == 12000.0 and s["cpu_util_steady"] == 98.5
    runs = [
        {"model": "yolo12n", "variant": v, "steady_images_per_s": ips, "batch": 16, "loader_workers": 8}
        for v, ips in (("preset", 600.0), ("bare", 500.0), ("reference", 640.0), ("preset", 620.0))
    ]
    runs.append({"model": "yolo12n", "variant": "bare", "error": "exit 1"})
    rows = gpu.aggregate(runs)
    assert [r["variant"] for r in rows] == ["preset", "bare", "reference"]
    preset = rows[0]
    assert preset["n"] == 2 and preset["steady_images_per_s"] == 610.0
    assert preset["vs_bare"] == pytest.approx(1.22) and preset["vs_reference"] == pytest.approx(610 / 640)
    assert "yolo12n" in gpu.gpu_report_tables(rows)


def test_child_env_starts_from_the_launch_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("XRAY_BENCH_EDITED_AFTER_LAUNCH", "1")  # as Ultralytics' import edits OMP_NUM_THREADS
    env = common.child_env(tmp_path / "ul", XRAY_EXP_ROOT="/r")
    assert "XRAY_BENCH_EDITED_AFTER_LAUNCH" not in env
    assert env["YOLO_CONFIG_DIR"] == str((tmp_path / "ul").resolve()) and env["YOLO_OFFLINE"] == "1"
    assert env["XRAY_EXP_ROOT"] == "/r"


# ---------------------------------------------------------------- loader


def test_loader_variants_take_pipeline_kwargs_from_the_seam(tmp_path):
    from xray_exp.yolo.args import ultralytics_train_keys

    data = tmp_path / "d.yaml"
    bare = loader.loader_variant_kwargs("bare", data, 640, tmp_path)
    assert bare == {"data": str(data), "imgsz": 640}  # everything else at Ultralytics' defaults
    preset = loader.loader_variant_kwargs("preset", data, 640, tmp_path)
    assert preset["cache"] == "ram" and preset["hsv_s"] == 0.7 and preset["imgsz"] == 640
    xray = loader.loader_variant_kwargs("xray", data, 320, tmp_path)
    assert (xray["hsv_h"], xray["hsv_s"], xray["shear"], xray["imgsz"]) == (0.0, 0.0, 0.0, 320)
    for kwargs in (bare, preset, xray):
        assert set(kwargs) <= ultralytics_train_keys()
        assert not {"device", "batch", "workers", "project"} & set(kwargs)  # the pipeline only
    with pytest.raises(ValueError, match="unknown variant"):
        loader.loader_variant_kwargs("fast", data, 640, tmp_path)


def test_loader_measures_stages_and_workers_on_a_tiny_set(tmp_path, capsys, monkeypatch):
    """The whole benchmark on 8 synthetic 64-px images: every stage timed, images/s for 0 and 1 workers."""
    monkeypatch.setenv("XRAY_EXP_ROOT", str(tmp_path))
    rc = loader.main(
        [
            "--variants",
            "xray",
            "gray",
            "--workers",
            "0",
            "1",
            "--batch",
            "4",
            "--batches",
            "2",
            "--samples",
            "4",
            "--images",
            "8",
            "--unique",
            "8",
            "--imgsz",
            "64",
            "--out-dir",
            str(tmp_path / "json"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "Mosaic" in out and "RandomPerspective" in out and "loader throughput" in out
    result = json.loads(next((tmp_path / "json").glob("loader-*.json")).read_text())
    xray, gray = result["results"]["variants"]
    assert xray["kwargs"] == gray["kwargs"] and xray["kwargs"]["cache"] == "ram"
    assert "GrayHSV" in gray["stages"]["order"] and "RandomHSV" in xray["stages"]["order"]
    ms = xray["stages"]["ms"]
    assert all(ms[name] >= 0 for name in xray["stages"]["order"]) and ms["total"] > 0
    assert ms["Mosaic"] > 0 and ms["Format"] > 0
    assert [m["workers"] for m in xray["loaders"]] == [0, 1]
    assert all(m["images"] == 8 and m["images_per_s"] > 0 for m in xray["loaders"])


# ---------------------------------------------------------------- hostile inputs


def test_hostile_j2k_input_closes_the_file_it_reads():
    """The patched JPEG 2000 DICOM is read from pydicom's test file without leaving its handle to the GC."""
    import warnings

    from xray_exp.bench.hostile import j2k_frame_larger_than_header

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = j2k_frame_larger_than_header()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert b"\xff\x4f\xff\x51" in data  # the codestream (SOC, SIZ) is still there, patched
