"""GPU training throughput: train-only images/s per epoch, GPU utilisation and peak memory, preset vs bare.

    python -m xray_exp.bench gpu                                   # yolo12n/s/x x {preset, bare, reference}
    python -m xray_exp.bench gpu --models yolo12n --variants preset bare --epochs 3 --reps 2
    python -m xray_exp.bench gpu --allow-cpu --models yolo12n --images 32 --imgsz 128 --epochs 2   # harness check

Without a CUDA GPU it prints why, writes JSON with `skipped`, and exits 0 (--allow-cpu runs the whole
harness on the CPU instead: no utilisation figures, nothing to compare with the H100 reference).

Variants, each a fresh subprocess through `xray_exp.bench.instrument`:
  preset     `python -m xray_exp.train model=<m> hardware=gpu ...` -- the real CLI with xray_exp/conf/hardware/gpu.yaml
             (device 0, batch -1 = AutoBatch, workers 16, AMP, cache ram); augmentation=default (Ultralytics'
             own values, so the pipeline matches the bare runs), tracking and post-training steps off
  bare       bare Ultralytics `YOLO("<m>.yaml").train(data, epochs, imgsz, device, val=False, close_mosaic=0)`:
             every other argument at Ultralytics' default (batch 16, workers 8, cache off, AMP on)
  reference  bare Ultralytics with the H100 reference settings of docs/NOTES: batch 64 (32 for yolo12x), workers 16
  seam       bare Ultralytics with the preset's kwargs from the seam (framework cost on a GPU; not in the default set)

All variants: validation off between epochs (val=False; Ultralytics still validates after the last epoch),
mosaic kept on (close_mosaic=0), synthetic 640 px radiographs (--unique distinct images repeated up to
--images per epoch through a train list). An epoch is timed from on_train_epoch_start to on_train_epoch_end,
the device synchronised at both edges; images/s = train images / epoch seconds; "steady" = median of the
epochs after the first. GPU utilisation and memory are sampled from this process (NVML, else nvidia-smi)
and averaged over the steady epochs' windows; CPU utilisation of the machine likewise (psutil).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xray_exp.bench.common import (
    REPO,
    child_env,
    envelope,
    format_text_table,
    interleave,
    output_root,
    ratio,
    run_process,
    summarize,
    tail,
    write_result,
)
from xray_exp.bench.overhead import compose_train_config
from xray_exp.yolo.runtime import apply_ultralytics_settings, configure_offline

NAME = "gpu"
VARIANTS = ("preset", "bare", "reference", "seam")
DEFAULT_VARIANTS = ("preset", "bare", "reference")
MODELS = ("yolo12n", "yolo12s", "yolo12m", "yolo12l", "yolo12x")
# docs NOTES: bare Ultralytics on one H100, 640 px, workers 16, AMP; batch 64 (yolo12x: 32)
REFERENCE_BATCH = {"yolo12x": 32, "yolo12l": 32}
REFERENCE = {
    "yolo12n": "555-715 img/s, ~65% util, 16 GB",
    "yolo12s": "465-553 img/s, ~85% util, 30 GB",
    "yolo12x": "118 img/s (batch 32), ~90% util, 50 GB",
}
POST_OFF = (
    "tracking=disabled",
    "post.samples=0",
    "post.onnx=false",
    "post.eval_splits=[]",
    "objective.metric=ultralytics/val/mAP50-95",
)


# ---------------------------------------------------------------- availability


def probe_cuda(timeout: float = 120) -> dict[str, Any]:
    """What torch sees, asked in a child process (this process never creates a CUDA context)."""
    code = (
        "import json, torch\n"
        "ok = torch.cuda.is_available()\n"
        "print(json.dumps({'torch': torch.__version__, 'cuda_build': torch.version.cuda, 'available': ok,\n"
        "  'count': torch.cuda.device_count() if ok else 0,\n"
        "  'names': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if ok else []}))"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
        info = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}
        if proc.returncode != 0:
            info = {"available": False, "error": proc.stderr.strip()[-500:]}
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
        info = {"available": False, "error": f"{type(exc).__name__}: {exc}"}
    info["nvidia_smi"] = shutil.which("nvidia-smi")
    return info


def skip_reason(info: dict[str, Any]) -> str | None:
    """None when a CUDA GPU is usable, else one sentence saying why not."""
    if info.get("available") and info.get("count", 0) > 0:
        return None
    parts = ["no CUDA GPU usable by this process: torch.cuda.is_available() is False"]
    if info.get("torch"):
        parts.append(f"(torch {info['torch']}, built for CUDA {info.get('cuda_build')})")
    parts.append("; nvidia-smi " + ("found" if info.get("nvidia_smi") else "not found"))
    if info.get("error"):
        parts.append(f"; probe error: {info['error']}")
    return " ".join(parts).replace(" ;", ";")


def skipped_payload(reason: str, cuda: dict[str, Any]) -> dict[str, Any]:
    return {"skipped": True, "reason": reason, "cuda_probe": cuda}


# ---------------------------------------------------------------- device mapping and sampling


def nvml_target(cuda_index: int, env: Mapping[str, str] | None = None) -> tuple[str, int | str]:
    """Which NVML device a CUDA index means: ("index", n) or ("uuid", "GPU-..."), honouring CUDA_VISIBLE_DEVICES.

    The children run with CUDA_DEVICE_ORDER=PCI_BUS_ID, NVML's own order, so an unmasked index maps 1:1.
    """
    variables = os.environ if env is None else env
    visible = [v.strip() for v in variables.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if not visible:
        return "index", cuda_index
    if cuda_index >= len(visible):
        raise ValueError(f"CUDA index {cuda_index} but CUDA_VISIBLE_DEVICES lists {len(visible)} device(s)")
    entry = visible[cuda_index]
    return ("index", int(entry)) if entry.isdigit() else ("uuid", entry)


class GpuSampler:
    """Samples (time.time(), GPU util %, GPU memory used MiB, machine CPU %) every `interval` seconds in a thread.

    NVML (pynvml) when importable, else a long-running `nvidia-smi --query-gpu ... -lms`; with neither, or
    device=None (CPU harness check), only CPU utilisation is sampled.
    """

    def __init__(self, target: tuple[str, int | str] | None, interval: float = 0.2):
        self.target, self.interval = target, interval
        self.samples: list[tuple[float, float | None, float | None, float | None]] = []
        self.source = "none"
        self.device: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read: Callable[[], tuple[float | None, float | None]] = lambda: (None, None)
        self._smi: subprocess.Popen | None = None

    def __enter__(self) -> GpuSampler:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if self.target is not None:
            self._open_device(*self.target)
        self._thread = threading.Thread(target=self._loop, name="gpu-sampler", daemon=True)
        self._thread.start()

    def _open_device(self, kind: str, value: int | str) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = (
                pynvml.nvmlDeviceGetHandleByIndex(int(value))
                if kind == "index"
                else pynvml.nvmlDeviceGetHandleByUUID(str(value))
            )
            name = pynvml.nvmlDeviceGetName(handle)
            total = pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20
            self.device = {"name": name.decode() if isinstance(name, bytes) else name, "memory_total_mib": total}

            def read() -> tuple[float, float]:
                return (
                    float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                    pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20,
                )

            self._read, self.source = read, "nvml"
            return
        except Exception as exc:  # pynvml missing or NVML unusable: try nvidia-smi
            self.device["nvml_error"] = f"{type(exc).__name__}: {exc}"
        if shutil.which("nvidia-smi"):
            self._smi = smi = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                    "-i",
                    str(value),
                    "-lms",
                    str(max(int(self.interval * 1000), 100)),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            latest: dict[str, tuple[float, float]] = {}

            def pump() -> None:
                assert smi.stdout is not None  # stdout=PIPE
                for line in smi.stdout:
                    parsed = parse_smi_line(line)
                    if parsed:
                        latest["v"] = parsed

            threading.Thread(target=pump, name="nvidia-smi", daemon=True).start()
            self._read, self.source = (lambda: latest.get("v", (None, None))), "nvidia-smi"

    def _loop(self) -> None:
        try:
            import psutil

            psutil.cpu_percent(interval=None)
            cpu = lambda: psutil.cpu_percent(interval=None)  # noqa: E731
        except ImportError:
            cpu = lambda: None  # noqa: E731
        while not self._stop.wait(self.interval):
            util, mem = self._read()
            self.samples.append((time.time(), util, mem, cpu()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._smi is not None:
            self._smi.terminate()

    def memory_used_now(self) -> float | None:
        return self._read()[1]


def parse_smi_line(line: str) -> tuple[float, float] | None:
    """'87, 15342' -> (87.0, 15342.0); None for anything else ([N/A], headers)."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 2:
        return None
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return None


def window_stats(
    samples: Sequence[tuple[float, float | None, float | None, float | None]], windows: Sequence[tuple[float, float]]
) -> dict[str, Any]:
    """Mean GPU util, mean CPU util and max GPU memory over the samples inside any [start, end] window."""
    inside = [s for s in samples if any(a <= s[0] <= b for a, b in windows)]
    utils = [s[1] for s in inside if s[1] is not None]
    mems = [s[2] for s in inside if s[2] is not None]
    cpus = [s[3] for s in inside if s[3] is not None]
    return {
        "samples": len(inside),
        "gpu_util_mean": sum(utils) / len(utils) if utils else None,
        "gpu_idle_share": 1 - sum(utils) / len(utils) / 100 if utils else None,
        "gpu_memory_max_mib": max(mems) if mems else None,
        "cpu_util_mean": sum(cpus) / len(cpus) if cpus else None,
    }


# ---------------------------------------------------------------- data and arguments


def repeat_to(items: Sequence[Any], total: int) -> list[Any]:
    """`items` cycled to exactly `total` entries (an epoch of `total` images from fewer distinct files)."""
    if not items:
        raise ValueError("repeat_to: nothing to repeat")
    return [items[i % len(items)] for i in range(total)]


def ensure_bench_dataset(cache_dir: Path, images: int, unique: int, imgsz: int, val: int) -> Path:
    """A data.yaml whose train split lists `images` entries cycling over `unique` synthetic radiographs."""
    from xray_exp.data.synthetic import ensure_synthetic_dataset  # lazy: looked up at call time (tests replace it)

    unique = min(unique, images)
    base = ensure_synthetic_dataset(cache_dir, num_train=unique, num_val=val, num_test=1, image_size=imgsz)
    root = base.parent
    train = sorted((root / "images" / "train").glob("*.png"))
    out = cache_dir / f"bench-{root.name}-x{images}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text("".join(f"{p}\n" for p in repeat_to(train, images)))
    data_yaml = out / "data.yaml"
    names = "".join(f"  {k}: {v}\n" for k, v in _names(base).items())
    data_yaml.write_text(
        f"# {images} train entries over {len(train)} distinct images (xray_exp.bench gpu)\n"
        f"path: {root}\ntrain: {out / 'train.txt'}\nval: images/val\nnames:\n{names}"
    )
    return data_yaml


def _names(data_yaml: Path) -> dict[int, str]:
    import yaml

    names = yaml.safe_load(data_yaml.read_text())["names"]
    return dict(enumerate(names)) if isinstance(names, list) else {int(k): v for k, v in names.items()}


def reference_batch(model: str) -> int:
    return REFERENCE_BATCH.get(model, 64)


def common_kwargs(data_yaml: Path, run_dir: Path, epochs: int, imgsz: int, device: str) -> dict[str, Any]:
    """What every bare variant sets: data, length, size, device, no per-epoch validation, mosaic on."""
    return {
        "data": str(data_yaml),
        "project": str(run_dir.parent),
        "name": run_dir.name,
        "exist_ok": True,
        "epochs": epochs,
        "imgsz": imgsz,
        "device": device,
        "val": False,
        "close_mosaic": 0,
    }


def gpu_variant_train_kwargs(
    variant: str,
    model: str,
    data_yaml: Path,
    run_dir: Path,
    epochs: int,
    imgsz: int,
    device: str,
    preset_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Ultralytics train kwargs of a bare-side variant (bare, reference, seam)."""
    base = common_kwargs(data_yaml, run_dir, epochs, imgsz, device)
    if variant == "bare":
        return base
    if variant == "reference":
        return {**base, "batch": reference_batch(model), "workers": 16, "amp": True}
    if variant == "seam":
        if preset_kwargs is None:
            raise ValueError("variant 'seam' needs the preset's kwargs")
        return {**preset_kwargs, **{k: base[k] for k in ("project", "name", "exist_ok")}}
    raise ValueError(f"variant {variant!r} has no bare kwargs (known: {', '.join(VARIANTS)})")


def preset_overrides(
    model: str,
    data_yaml: Path,
    epochs: int,
    imgsz: int,
    augmentation: str,
    device: str | None,
    extra: Sequence[str] = (),
) -> list[str]:
    """xray_exp.train overrides of the preset variant (run_name added per run)."""
    out = [
        f"model={model}",
        "hardware=gpu",
        "dataset=yolo",
        f"dataset.data_yaml={data_yaml}",
        f"train.epochs={epochs}",
        f"train.imgsz={imgsz}",
        f"augmentation={augmentation}",
        "augmentation.close_mosaic=0",
        "+train.extra.val=false",
        *POST_OFF,
    ]
    if device is not None:
        out.append(f"hardware.device={device}")
    return [*out, *extra]


def compose_preset_kwargs(overrides: list[str], root: Path, data_yaml: Path, run_dir: Path) -> dict[str, Any]:
    """The preset's Ultralytics kwargs, from the seam (for the JSON and the `seam` variant)."""
    from xray_exp.yolo.args import to_train_args  # lazy: heavy (omegaconf, yaml)

    return to_train_args(compose_train_config(overrides, root), data_yaml, run_dir)


# ---------------------------------------------------------------- one run


def summarize_run(record: dict[str, Any], samples: list, baseline_mib: float | None) -> dict[str, Any]:
    """Throughput, utilisation and memory of one variant run from the child's record and the samples."""
    epochs = record.get("epochs", [])
    windows_all = [(e["wall_start"], e["wall_end"]) for e in epochs]
    windows_steady = windows_all[1:] or windows_all
    steady, every = window_stats(samples, windows_steady), window_stats(samples, windows_all)
    run_mems = [s[2] for s in samples if s[2] is not None]
    facts = record.get("trainer", {})
    peak_nvml = every["gpu_memory_max_mib"]  # during the training epochs (AutoBatch probing excluded)
    return {
        "batch": facts.get("batch_size"),
        "loader_workers": facts.get("loader_workers"),
        "train_images": facts.get("train_images"),
        "amp": facts.get("amp"),
        "cache": facts.get("cache"),
        "epochs": [{k: e.get(k) for k in ("epoch", "seconds", "images", "batches", "images_per_s")} for e in epochs],
        "first_epoch_images_per_s": record.get("first_epoch_images_per_s"),
        "steady_images_per_s": record.get("steady_images_per_s"),
        "gpu_util_steady": steady["gpu_util_mean"],
        "gpu_idle_share_steady": steady["gpu_idle_share"],
        "cpu_util_steady": steady["cpu_util_mean"],
        "gpu_util_all_epochs": every["gpu_util_mean"],
        "gpu_memory_peak_mib": peak_nvml,
        "gpu_memory_peak_above_idle_mib": peak_nvml - baseline_mib
        if peak_nvml is not None and baseline_mib is not None
        else None,
        "gpu_memory_peak_whole_run_mib": max(run_mems) if run_mems else None,
        "torch_max_reserved_mib": record.get("memory", {}).get("cuda_max_reserved_mib"),
        "torch_max_allocated_mib": record.get("memory", {}).get("cuda_max_allocated_mib"),
        "setup_s": record.get("setup_s"),
        "train_call_s": record.get("train_call_s"),
        "epoch_restarts": record.get("epoch_restarts"),
        "samples_steady": steady["samples"],
    }


def run_variant(model: str, variant: str, rep: int, ctx: dict[str, Any]) -> dict[str, Any]:
    work: Path = ctx["work"]
    tag = f"{model}-{variant}-{rep}"
    record_path, log_path = work / "records" / f"{tag}.json", work / "logs" / f"{tag}.log"
    run_name = f"bench-gpu-{tag}"
    run_dir = ctx["root"] / "outputs" / "runs" / run_name
    if variant == "preset":
        target = ["xray_exp.train", *ctx["preset_overrides"][model], f"run_name={run_name}"]
        kwargs = ctx["preset_kwargs"][model]
    else:
        kwargs = gpu_variant_train_kwargs(
            variant,
            model,
            ctx["data_yaml"],
            run_dir,
            ctx["epochs"],
            ctx["imgsz"],
            ctx["device"],
            ctx["preset_kwargs"].get(model),
        )
        kwargs_path = work / "kwargs" / f"{tag}.json"
        kwargs_path.write_text(json.dumps(kwargs, indent=2))
        target = ["xray_exp.bench.bare_train", "--arch", f"{model}.yaml", "--kwargs", str(kwargs_path)]
    cmd = [sys.executable, "-m", "xray_exp.bench.instrument", str(record_path), *target]
    sampler = GpuSampler(ctx["nvml_target"], ctx["interval"])
    sampler.start()
    try:
        time.sleep(max(ctx["interval"] * 2, 0.2))
        baseline = sampler.memory_used_now()
        timing = run_process(cmd, env=ctx["env"], cwd=REPO, log_path=log_path, timeout=ctx["timeout"])
    finally:
        sampler.stop()
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    out = {
        "model": model,
        "variant": variant,
        "rep": rep,
        "returncode": timing.returncode,
        "process_wall_s": timing.wall_s,
        "sampler": sampler.source,
        "gpu": sampler.device,
        "idle_memory_mib": baseline,
        "kwargs": record.get("train_kwargs") or kwargs,
        "log": str(log_path),
    }
    if variant == "preset" and record.get("train_kwargs"):  # what the CLI passed vs what the seam gives
        from xray_exp.bench.overhead import kwargs_difference  # lazy: only on this path

        out["kwargs_difference_from_seam"] = kwargs_difference(record["train_kwargs"], kwargs)
    if timing.returncode != 0 or not record.get("ok"):
        out["error"] = f"exit {timing.returncode}{' (timed out)' if timing.timed_out else ''}: {tail(log_path, 1500)}"
        return out
    return {**out, **summarize_run(record, sampler.samples, baseline)}


# ---------------------------------------------------------------- report


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over repetitions per (model, variant), plus the variant's ratio to `bare` and `reference`."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    keys = (
        "steady_images_per_s",
        "first_epoch_images_per_s",
        "gpu_util_steady",
        "cpu_util_steady",
        "gpu_memory_peak_mib",
        "torch_max_reserved_mib",
        "setup_s",
        "process_wall_s",
    )
    for r in runs:
        if "error" in r:
            continue
        slot = table.setdefault(
            (r["model"], r["variant"]),
            {
                "model": r["model"],
                "variant": r["variant"],
                "batch": r.get("batch"),
                "workers": r.get("loader_workers"),
                "n": 0,
            },
        )
        slot["n"] += 1
        for k in keys:
            slot.setdefault(f"_{k}", []).append(r.get(k))
    rows = []
    for slot in table.values():
        for k in keys:
            slot[k] = summarize([v for v in slot.pop(f"_{k}") if v is not None])["median"]
        rows.append(slot)
    for row in rows:
        for other in ("bare", "reference"):
            peer = table.get((row["model"], other))
            row[f"vs_{other}"] = ratio(row["steady_images_per_s"], peer["steady_images_per_s"]) if peer else None
    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(
        rows, key=lambda r: (MODELS.index(r["model"]) if r["model"] in MODELS else 99, order.get(r["variant"], 99))
    )


def gpu_report_tables(rows: list[dict[str, Any]]) -> str:
    return format_text_table(
        [
            "model",
            "variant",
            "batch",
            "workers",
            "img/s steady",
            "img/s epoch 1",
            "GPU util %",
            "CPU util %",
            "GPU mem peak MiB",
            "torch reserved MiB",
            "vs bare",
            "vs reference",
            "runs",
        ],
        [
            [
                r["model"],
                r["variant"],
                r["batch"],
                r["workers"],
                r["steady_images_per_s"],
                r["first_epoch_images_per_s"],
                r["gpu_util_steady"],
                r["cpu_util_steady"],
                r["gpu_memory_peak_mib"],
                r["torch_max_reserved_mib"],
                r["vs_bare"],
                r["vs_reference"],
                r["n"],
            ]
            for r in rows
        ],
    )


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None, probe: Callable[[], dict[str, Any]] = probe_cuda) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m xray_exp.bench gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["yolo12n", "yolo12s", "yolo12x"], choices=MODELS)
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (>= 2: epoch 1 is start-up)")
    parser.add_argument("--images", type=int, default=4096, help="train images per epoch")
    parser.add_argument("--unique", type=int, default=1024, help="distinct synthetic images behind them")
    parser.add_argument("--val-images", type=int, default=64, help="val split (validated once, at the end)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--reps", type=int, default=1, help="runs per (model, variant), interleaved")
    parser.add_argument("--device", default="0", help="CUDA device index for every variant (default 0)")
    parser.add_argument("--augmentation", default="default", help="augmentation group of the preset run")
    parser.add_argument(
        "--preset-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra xray_exp.train override for the preset variant (repeatable)",
    )
    parser.add_argument("--interval", type=float, default=0.2, help="GPU sampling period (s)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--allow-cpu", action="store_true", help="no GPU: run the harness on the CPU anyway")
    parser.add_argument("--work-dir", type=Path, help="runs, logs, records (default outputs/bench/gpu-work, kept)")
    parser.add_argument("--out-dir", type=Path, help="JSON folder (default outputs/bench)")
    args = parser.parse_args(argv)
    started = time.time()
    cuda = probe()
    reason = skip_reason(cuda)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if reason and not args.allow_cpu:
        print(f"gpu: SKIPPED - {reason}")
        path = write_result(
            NAME,
            envelope(NAME, argv, settings, skipped_payload(reason, cuda), started, skipped=True, reason=reason),
            args.out_dir,
        )
        print(f"wrote {path}")
        return 0
    device = args.device if not reason else "cpu"
    root = (args.work_dir or output_root() / "outputs" / "bench" / "gpu-work").resolve()
    work = root / "bench"
    for sub in ("records", "logs", "kwargs"):
        (work / sub).mkdir(parents=True, exist_ok=True)

    settings_dir = root / "outputs" / ".ultralytics"
    configure_offline(settings_dir)
    print(f"dataset: {args.images} train entries over {args.unique} distinct {args.imgsz} px images ...", flush=True)
    data_yaml = ensure_bench_dataset(
        root / "outputs" / ".cache" / "datasets", args.images, args.unique, args.imgsz, args.val_images
    )
    apply_ultralytics_settings(settings_dir / "runs")
    preset_dev = None if device == "0" else device
    overrides = {
        m: preset_overrides(m, data_yaml, args.epochs, args.imgsz, args.augmentation, preset_dev, args.preset_override)
        for m in args.models
    }
    preset_kwargs = {
        m: compose_preset_kwargs(overrides[m], root, data_yaml, root / "outputs" / "runs" / "preset")
        for m in args.models
    }
    env = child_env(
        settings_dir, XRAY_EXP_ROOT=str(root), PYTHONUNBUFFERED="1", MPLBACKEND="Agg", CUDA_DEVICE_ORDER="PCI_BUS_ID"
    )
    ctx = {
        "root": root,
        "work": work,
        "data_yaml": data_yaml,
        "epochs": args.epochs,
        "imgsz": args.imgsz,
        "device": device,
        "preset_overrides": overrides,
        "preset_kwargs": preset_kwargs,
        "env": env,
        "timeout": args.timeout,
        "interval": args.interval,
        "nvml_target": None if device == "cpu" else nvml_target(int(device.split(",")[0])),
    }
    runs = []
    for model in args.models:
        for variant, rep in interleave(args.variants, args.reps, order="abba"):
            print(f"{model} {variant} (rep {rep + 1}/{args.reps}) ...", flush=True)
            result = run_variant(model, variant, rep, ctx)
            runs.append(result)
            if "error" in result:
                print(f"  FAILED: {result['error'][-600:]}", file=sys.stderr, flush=True)
            else:
                print(
                    f"  {result['steady_images_per_s']:.1f} img/s steady (epoch 1 "
                    f"{result['first_epoch_images_per_s']:.1f}), batch {result['batch']}, GPU util "
                    f"{result['gpu_util_steady']}, peak {result['gpu_memory_peak_mib']} MiB",
                    flush=True,
                )
    rows = aggregate(runs)
    print()
    print(gpu_report_tables(rows))
    if reason:
        print(f"(CPU harness check: {reason})")
    print("reference (docs NOTES, bare Ultralytics, H100): " + "; ".join(f"{k} {v}" for k, v in REFERENCE.items()))
    results = {
        "table": rows,
        "runs": runs,
        "cuda_probe": cuda,
        "data_yaml": str(data_yaml),
        "reference_notes": REFERENCE,
        "harness_check_on_cpu": bool(reason),
    }
    path = write_result(NAME, envelope(NAME, argv, settings, results, started, skipped=False), args.out_dir)
    print(f"wrote {path}")
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
