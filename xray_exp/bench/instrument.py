"""Time Ultralytics training inside a child process without changing the code under test.

    python -m xray_exp.bench.instrument RECORD.json xray_exp.train tracking=disabled ...
    python -m xray_exp.bench.instrument RECORD.json xray_exp.bench.bare_train --arch yolo12n.yaml --kwargs k.json

Runs the named module as `python -m <module> <args>` would, with `ultralytics.engine.model.Model.train`
wrapped: the wrapper adds timing callbacks, times the call itself and writes RECORD.json (the train kwargs
it received, the call's seconds, each training epoch's window, the batch size actually used, peak CUDA
memory). Both sides of a comparison go through this same wrapper, so it costs them alike.

Ultralytics is patched when it is first imported (an import hook), not here: the module under test still
runs configure_offline() before Ultralytics reads its environment.

Epoch windows are `on_train_epoch_start` -> `on_train_epoch_end` (Ultralytics' trainer): the batch loop,
optimizer steps and the scheduler step, without validation, checkpointing or plots of the epoch end. On
CUDA the window edges synchronise the device, so queued kernels are counted in the epoch they belong to.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import runpy
import sys
import time
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

PATCHED_MODULE = "ultralytics.engine.model"


def _cuda_sync(trainer) -> None:
    device = getattr(trainer, "device", None)
    if getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _cuda_reset_peak(trainer) -> None:
    device = getattr(trainer, "device", None)
    if getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def _cuda_peak(trainer) -> dict[str, float]:
    device = getattr(trainer, "device", None)
    if getattr(device, "type", None) != "cuda":
        return {}
    import torch

    return {
        "cuda_max_allocated_mib": torch.cuda.max_memory_allocated(device) / 2**20,
        "cuda_max_reserved_mib": torch.cuda.max_memory_reserved(device) / 2**20,
    }


class TrainRecorder:
    """Callbacks for an Ultralytics trainer that record set-up time and each training epoch's window.

    `clock` (durations) and `wall` (epoch edges in time.time(), to line up with GPU samples taken by
    another process) and `sync`/`peak` are injectable for tests.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        wall: Callable[[], float] = time.time,
        sync: Callable[[Any], None] = _cuda_sync,
        peak: Callable[[Any], dict] = _cuda_peak,
        cpu: Callable[[], float] = time.process_time,
        reset_peak: Callable[[Any], None] = _cuda_reset_peak,
    ):
        self.clock, self.wall, self.sync, self.peak, self.cpu = clock, wall, sync, peak, cpu
        self.reset_peak = reset_peak
        self.epochs: list[dict[str, Any]] = []
        self.restarts = 0  # an epoch started again before it ended (Ultralytics' OOM batch halving)
        self.pretrain_start: float | None = None
        self.setup_s: float | None = None
        self.memory: dict[str, float] = {}  # peak CUDA memory of the training epochs (set-up/AutoBatch excluded)
        self.memory_whole_call: dict[str, float] = {}  # ... and of everything up to on_train_end
        self.trainer_facts: dict[str, Any] = {}
        self.events: dict[str, float] = {}  # clock() of each trainer event, first occurrence
        self._open: dict[str, Any] | None = None

    def mark(self, event: str) -> None:
        self.events.setdefault(event, self.clock())

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        return {
            "on_pretrain_routine_start": self.on_pretrain_routine_start,
            "on_pretrain_routine_end": self.on_pretrain_routine_end,
            "on_train_epoch_start": self.on_train_epoch_start,
            "on_train_epoch_end": self.on_train_epoch_end,
            "on_train_end": self.on_train_end,
        }

    def on_pretrain_routine_start(self, trainer) -> None:
        self.pretrain_start = self.clock()
        self.mark("pretrain_routine_start")

    def on_pretrain_routine_end(self, trainer) -> None:
        self.mark("pretrain_routine_end")
        self.memory_whole_call = self.peak(trainer)  # set-up so far: AutoBatch probing, RAM cache, model
        self.reset_peak(trainer)  # from here on the peak is training's own
        if self.pretrain_start is not None:
            self.setup_s = self.events["pretrain_routine_end"] - self.pretrain_start
        loader = getattr(trainer, "train_loader", None)
        args = getattr(trainer, "args", None)
        self.trainer_facts = {
            "batch_size": getattr(trainer, "batch_size", None),
            "loader_workers": getattr(loader, "num_workers", None),
            "train_images": _dataset_len(loader),
            "device": str(getattr(trainer, "device", "")),
            "amp": bool(getattr(trainer, "amp", False)),
            "cache": getattr(args, "cache", None),
            "imgsz": getattr(args, "imgsz", None),
        }

    def on_train_epoch_start(self, trainer) -> None:
        if self._open is not None:
            self.restarts += 1
        self.sync(trainer)
        self.mark("first_epoch_start")
        self._open = {
            "epoch": int(getattr(trainer, "epoch", len(self.epochs))) + 1,
            "start": self.clock(),
            "wall_start": self.wall(),
            "cpu_start": self.cpu(),
        }

    def on_train_epoch_end(self, trainer) -> None:
        if self._open is None:
            return
        self.sync(trainer)
        end, wall_end = self.clock(), self.wall()
        loader = getattr(trainer, "train_loader", None)
        images = _dataset_len(loader)
        seconds = end - self._open["start"]
        cpu_start = self._open.pop("cpu_start")
        self.epochs.append(
            {
                **self._open,
                "end": end,
                "wall_end": wall_end,
                "seconds": seconds,
                "images": images,
                "cpu_s": self.cpu() - cpu_start,  # this process's threads (not data-loader workers)
                "batches": len(loader) if loader is not None else None,
                "batch_size": getattr(trainer, "batch_size", None),
                "images_per_s": images / seconds if images and seconds > 0 else None,
            }
        )
        self._open = None
        self.events["last_epoch_end"] = end
        for key, value in self.peak(trainer).items():  # epochs only: validation has not run yet
            self.memory[key] = max(value, self.memory.get(key, 0.0))

    def on_train_end(self, trainer) -> None:
        self.mark("train_end")
        for key, value in self.peak(trainer).items():  # since set-up: epochs, validation, final evaluation
            self.memory_whole_call[key] = max(value, self.memory_whole_call.get(key, 0.0))

    def to_dict(self, origin: float | None = None) -> dict[str, Any]:
        """Everything recorded; `events` in seconds since `origin` (the start of the train call)."""
        base = origin if origin is not None else (self.pretrain_start or 0.0)
        events = {k: v - base for k, v in sorted(self.events.items(), key=lambda kv: kv[1])}
        return {
            "setup_s": self.setup_s,
            "epochs": self.epochs,
            "epoch_restarts": self.restarts,
            "events_s": events,
            "trainer": self.trainer_facts,
            "memory": self.memory,
            "memory_whole_call": self.memory_whole_call,
            "epochs_s": sum(e["seconds"] for e in self.epochs),
            "epochs_cpu_s": sum(e["cpu_s"] for e in self.epochs),
            **epoch_throughput(self.epochs),
        }


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _dataset_len(loader) -> int | None:
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):
        return None


def epoch_throughput(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """First-epoch and steady-state images/s; steady = median over epochs after the first (start-up costs
    land in epoch 1: worker start, cuDNN autotuning, lazy allocations), or the only epoch there is."""
    import statistics

    rates = [e["images_per_s"] for e in epochs if e.get("images_per_s")]
    if not rates:
        return {"first_epoch_images_per_s": None, "steady_images_per_s": None, "steady_epochs": 0}
    steady = rates[1:] or rates
    return {
        "first_epoch_images_per_s": rates[0],
        "steady_images_per_s": statistics.median(steady),
        "steady_epochs": len(rates) - 1 if len(rates) > 1 else 1,
    }


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        return str(value)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2))
    os.replace(tmp, path)


class _CallbackHost(Protocol):
    """What the wrapped train uses of an Ultralytics Model (not imported here: the hook patches it on import)."""

    def add_callback(self, event: str, func: Callable[[Any], None]) -> None: ...


def wrap_train(model_cls, record_path: Path) -> None:
    """Replace `model_cls.train` with a timed version that writes `record_path` when the call returns."""
    original = model_cls.train
    if getattr(original, "_xray_bench_wrapped", False):
        return

    def train(self: _CallbackHost, trainer: object = None, **kwargs: object) -> object:
        recorder = TrainRecorder()
        for event, fn in recorder.callbacks().items():
            self.add_callback(event, fn)
        record: dict[str, Any] = {
            "train_kwargs": dict(kwargs),
            "pid": os.getpid(),
            "cpu_before_call_s": time.process_time(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }
        cpu_started, children_started = time.process_time(), _children_cpu()
        started = recorder.clock()
        try:
            result = original(self, trainer=trainer, **kwargs)
            record["ok"] = True
            return result
        except BaseException as exc:
            record["ok"] = False
            record["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            record["train_call_s"] = recorder.clock() - started
            # CPU seconds of this process (all its threads) and of its reaped children (data-loader workers)
            # during the call: far less sensitive than wall time to other load on a shared machine.
            record["train_call_cpu_s"] = time.process_time() - cpu_started + _children_cpu() - children_started
            record.update(recorder.to_dict(origin=started))
            write_json_atomic(record_path, record)

    train._xray_bench_wrapped = True  # type: ignore[attr-defined]  # a marker on the function object
    model_cls.train = train


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Runs `patch(module)` right after `name` is first imported (the module's own code runs unchanged)."""

    def __init__(self, name: str, patch: Callable[[Any], None]):
        self.name, self.patch = name, patch

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps find_spec below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader, patch = spec.loader, self.patch
        exec_module = loader.exec_module

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]  # the hook's point: patch after loading
        return spec


def install(record_path: Path) -> None:
    """Arrange for Model.train to be wrapped (now if Ultralytics is already imported, else on import)."""
    record_path = Path(record_path).resolve()

    def patch(module) -> None:
        wrap_train(module.Model, record_path)

    if PATCHED_MODULE in sys.modules:
        patch(sys.modules[PATCHED_MODULE])
    else:
        sys.meta_path.insert(0, _PatchOnImport(PATCHED_MODULE, patch))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    record, module, args = Path(argv[0]), argv[1], argv[2:]
    install(record)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
