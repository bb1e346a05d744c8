"""CPU inference: ONNX Runtime vs PyTorch, batch 1 and batched, raw forward and end-to-end predict.

    python -m xray_exp.bench inference                          # 640 and 320 px, batch 1 and 8 (~7 min on 2 busy cores)
    python -m xray_exp.bench inference --imgsz 640 --batch 4 --rounds 5 --iters 5 --threads 1 2 4
    python -m xray_exp.bench inference --gate-only --imgsz 640 --gate-imgsz 224   # detector vs detector + gate

Model: the service's demo yolo12n (xray_exp.serve.demo_model: random init, BatchNorm calibrated, class logits
spread so a few boxes pass conf 0.25 -- post-processing does real work), one per size (calibrated at that
size), exported to static-shape ONNX per size and batch. Compared in interleaved rounds (every candidate
once per round, order reversed every other round; latency = median over all iterations, ratio = median of
the per-round ratios):

  forward   PyTorch: the fused model, eval, torch.inference_mode, as Ultralytics sets its threads on CPU
            (min(8, cores - 1)); ONNX Runtime: a default InferenceSession (what OnnxDetector opens)
  predict   PyTorch: YOLO(best.pt).predict (letterbox, forward, NMS); ONNX Runtime: the service's
            OnnxDetector.predict, and Ultralytics' YOLO(best.onnx).predict for reference
  threads   both at the same thread counts (--threads), forward at batch 1
  options   ONNX Runtime session options at batch 1: graph optimisation level, intra-op threads, spinning
  gate      the detector alone vs detector + normal/abnormal gate (classifier at --gate-imgsz), p50/p99 and
            their ratios, at the first size (xray_exp.bench.gate_pair; --gate-only: this section alone)

Target: ONNX Runtime >= 1.5x faster than PyTorch at batch 1 (checked for forward and predict at each size).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from xray_exp.bench.common import (
    envelope,
    format_text_table,
    load_average,
    usable_cpus,
    verdict,
    write_result,
)
from xray_exp.bench.timing import compare, time_candidates
from xray_exp.serve.demo_model import build_demo_model, synthetic_images
from xray_exp.yolo.export import export_onnx
from xray_exp.yolo.predict import load_yolo, pytorch_net
from xray_exp.yolo.runtime import configure_offline

NAME = "inference"
TARGET_SPEEDUP = 1.5
CONF, IOU = 0.25, 0.7


def ultralytics_cpu_threads(cores: int) -> int:
    """The torch thread count Ultralytics sets for CPU work (utils.NUM_THREADS: min(8, cores - 1), >= 1)."""
    return min(8, max(1, cores - 1))


class Setup:
    """Models, exports, sessions and inputs for one run of the benchmark (heavy imports live here)."""

    def __init__(self, work: Path, sizes: list[int], batch: int, n_images: int):
        configure_offline(work / ".ultralytics")
        import cv2
        import numpy as np
        import torch

        self.np, self.torch, self.cv2 = np, torch, cv2
        self.work, self.batch = work, batch
        started = time.perf_counter()
        # One demo model per size, calibrated at that size (as a model trained at that size would be):
        # a head calibrated at another resolution gives ill-conditioned outputs there.
        self.pt: dict[int, Path] = {}
        self.onnx: dict[tuple[int, int], Path] = {}
        for size in sizes:
            pt, onnx = build_demo_model(work / f"model-{size}", imgsz=size)
            self.pt[size] = pt
            self.onnx[(size, 1)] = self._keep(onnx, size, 1)
            if batch != 1:
                self.onnx[(size, batch)] = self._keep(export_onnx(pt, size, batch=batch), size, batch)
        self.model_seconds = time.perf_counter() - started
        self.net = {size: pytorch_net(self.pt[size], fuse=True) for size in sizes}
        self.gray = synthetic_images(n_images, size=1024, seed=1)  # prepared films are ~1024 px
        self.bgr = [cv2.cvtColor(g, cv2.COLOR_GRAY2BGR) for g in self.gray]
        self.yolo_pt = {size: load_yolo(self.pt[size]) for size in sizes}
        self.yolo_onnx = {size: load_yolo(self.onnx[(size, 1)]) for size in sizes}

    def _keep(self, exported: Path, size: int, b: int) -> Path:
        target = self.work / f"yolo12n-{size}-b{b}.onnx"
        shutil.move(str(exported), target)
        return target

    def session(self, size: int, b: int, level: str | None = None, threads: int = 0, spinning: bool | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if level is not None:
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        if threads:
            options.intra_op_num_threads = threads
        if spinning is not None:
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        return ort.InferenceSession(str(self.onnx[(size, b)]), options, providers=["CPUExecutionProvider"])

    def tensor(self, size: int, b: int):
        """A real letterboxed batch (the service's preprocessing), as float32 NCHW."""
        det = self.detector(size, 1)
        return self.np.concatenate([det.preprocess(self.gray[i % len(self.gray)])[0] for i in range(b)])

    def detector(self, size: int, b: int, threads: int = 0):
        from xray_exp.inference.onnx_detector import OnnxDetector  # lazy: heavy (cv2, onnxruntime)

        return OnnxDetector(self.onnx[(size, b)], device="cpu", threads=threads)

    def torch_forward(self, x, threads: int) -> Callable[[], Any]:
        torch, net = self.torch, self.net[x.shape[-1]]
        xt = torch.from_numpy(x)

        def run():
            torch.set_num_threads(threads)
            with torch.inference_mode():
                return net(xt)

        return run

    def parity(self, size: int) -> dict[str, float]:
        """Max |ONNX Runtime - PyTorch| of the raw output on one real input (same graph check): box
        coordinates (input pixels) and class scores."""
        x = self.tensor(size, 1)
        ort_out = self.session(size, 1).run(None, {"images": x})[0]
        torch_out = self.torch_forward(x, self.torch.get_num_threads())()[0].numpy()
        diff = abs(ort_out - torch_out)[0]
        return {"box_px": float(diff[:4].max()), "score": float(diff[4:].max())}


def forward_candidates(s: Setup, size: int, b: int, torch_threads: int) -> dict[str, Callable[[], Any]]:
    x = s.tensor(size, b)
    sess = s.session(size, b)
    name = sess.get_inputs()[0].name
    return {"pytorch": s.torch_forward(x, torch_threads), "onnxruntime": lambda: sess.run(None, {name: x})}


def predict_candidates(s: Setup, size: int, b: int, torch_threads: int) -> dict[str, Callable[[], Any]]:
    torch, n = s.torch, len(s.gray)
    state = {"i": 0}

    def nxt(k: int) -> list[int]:
        start = state["i"]
        state["i"] = (start + k) % n
        return [(start + j) % n for j in range(k)]

    def pt_predict():
        torch.set_num_threads(torch_threads)
        idx = nxt(b)
        source = s.bgr[idx[0]] if b == 1 else [s.bgr[i] for i in idx]
        return s.yolo_pt[size].predict(source, imgsz=size, conf=CONF, iou=IOU, device="cpu", verbose=False)

    if b == 1:
        det = s.detector(size, 1)

        def ort_predict():
            return det.predict(s.gray[nxt(1)[0]], conf=CONF, iou=IOU)

        yolo_onnx = s.yolo_onnx[size]

        def ultra_onnx():
            return yolo_onnx.predict(s.bgr[nxt(1)[0]], imgsz=size, conf=CONF, iou=IOU, device="cpu", verbose=False)

        return {"pytorch": pt_predict, "onnxruntime": ort_predict, "onnxruntime (Ultralytics predict)": ultra_onnx}
    det_b = s.detector(size, b)
    np = s.np

    def ort_batch():
        idx = nxt(b)
        pre = [det_b.preprocess(s.gray[i]) for i in idx]
        out = det_b.infer(np.concatenate([t for t, _ in pre]))
        return [det_b.postprocess(out[j : j + 1], box, conf=CONF, iou=IOU) for j, (_, box) in enumerate(pre)]

    return {"pytorch": pt_predict, "onnxruntime": ort_batch}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cores = usable_cpus()
    parser = argparse.ArgumentParser(prog="python -m xray_exp.bench inference", description=__doc__.splitlines()[0])
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640, 320])
    parser.add_argument("--batch", type=int, default=8, help="the batched case (default 8)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--iters", type=int, default=4, help="calls per candidate per round at batch 1")
    parser.add_argument("--batch-iters", type=int, default=2, help="calls per candidate per round, batched")
    parser.add_argument("--threads", type=int, nargs="+", help=f"same-thread comparison (default 1 and {cores})")
    parser.add_argument("--no-options", action="store_true", help="skip the ONNX Runtime session-option sweep")
    parser.add_argument("--images", type=int, default=8, help="distinct synthetic films (1024 px) to cycle through")
    parser.add_argument("--work-dir", type=Path, help="keep models here (default: a temporary folder, removed)")
    parser.add_argument("--out-dir", type=Path, help="JSON folder (default outputs/bench)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--gate-imgsz", type=int, default=224, help="the gate classifier's size (xray_exp.bench.gate_pair)"
    )
    parser.add_argument("--gate-iters", type=int, default=25, help="calls per candidate per round, gate pair")
    parser.add_argument("--no-gate", action="store_true", help="skip the detector vs detector + gate pair")
    parser.add_argument("--gate-only", action="store_true", help="only the gate pair, at the first --imgsz")
    parser.add_argument("--detector-onnx", type=Path, help="--gate-only: this detector instead of the demo one")
    parser.add_argument("--classifier-onnx", type=Path, help="the gate: this classifier instead of the demo one")
    args = parser.parse_args(argv)
    started = time.time()
    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="xray_bench_inference_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    thread_counts = sorted(set(args.threads or [1, cores]))
    try:
        if args.gate_only:
            from xray_exp.bench.gate_pair import measure_gate_only  # lazy: only on this path

            results, settings = measure_gate_only(args, work)
        else:
            results, settings = measure_inference(args, work, cores, thread_counts)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(inference_report_tables(results))
    path = write_result(NAME, envelope(NAME, argv, settings, results, started), args.out_dir)
    print(f"wrote {path}")
    missed = any(v["verdict"] != "PASS" for v in results.get("targets", []))
    return 1 if args.check and missed else 0


def measure_inference(args, work: Path, cores: int, thread_counts: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    import onnxruntime as ort

    print(f"building {len(args.imgsz)} demo models and their ONNX exports ...", flush=True)
    load_before = load_average()
    s = Setup(work, args.imgsz, args.batch, args.images)
    torch_default = ultralytics_cpu_threads(cores)
    settings = {
        "imgsz": args.imgsz,
        "batch": args.batch,
        "rounds": args.rounds,
        "iters": args.iters,
        "batch_iters": args.batch_iters,
        "threads": thread_counts,
        "images": args.images,
        "torch_threads_out_of_the_box": torch_default,
        "onnxruntime": ort.__version__,
        "torch": s.torch.__version__,
        "conf": CONF,
        "iou": IOU,
        "model": "xray_exp.serve.demo_model yolo12n",
        "model_build_and_export_s": s.model_seconds,
    }
    results: dict[str, Any] = {"forward": {}, "predict": {}, "threads": {}, "options": {}, "parity": {}, "targets": []}
    for size in args.imgsz:
        results["parity"][str(size)] = s.parity(size)
        for b in sorted({1, args.batch}):
            iters = args.iters if b == 1 else args.batch_iters
            for kind, make in (("forward", forward_candidates), ("predict", predict_candidates)):
                print(f"{kind} {size} px batch {b} ...", flush=True)
                timed = time_candidates(make(s, size, b, torch_default), args.rounds, iters)
                entry = {
                    k: {
                        **v["latency_s"],
                        "images_per_s": b / v["latency_s"]["median"],
                        "round_medians_s": v["round_medians_s"],
                    }
                    for k, v in timed.items()
                }
                entry["speedup_onnxruntime_vs_pytorch"] = compare(timed, "pytorch", "onnxruntime")
                results[kind][f"{size}/b{b}"] = entry
                if b == 1:
                    sp = entry["speedup_onnxruntime_vs_pytorch"]["median"]
                    results["targets"].append(
                        {
                            "what": f"{kind} {size} px batch 1",
                            "speedup": sp,
                            "target": TARGET_SPEEDUP,
                            "verdict": verdict(sp, TARGET_SPEEDUP, higher_is_better=True),
                        }
                    )
    size = args.imgsz[0]
    x = s.tensor(size, 1)
    for t in thread_counts:
        print(f"same threads: {t} ...", flush=True)
        sess = s.session(size, 1, threads=t)
        timed = time_candidates(
            {"pytorch": s.torch_forward(x, t), "onnxruntime": partial(sess.run, None, {"images": x})},
            args.rounds,
            args.iters,
        )
        results["threads"][str(t)] = {
            **{k: v["latency_s"] for k, v in timed.items()},
            "speedup_onnxruntime_vs_pytorch": compare(timed, "pytorch", "onnxruntime"),
        }
    if not args.no_options:
        print("onnxruntime session options ...", flush=True)
        options = {"default": s.session(size, 1)}
        for level in ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
            options[f"level={level.removeprefix('ORT_')}"] = s.session(size, 1, level=level)
        for t in thread_counts:
            for spin in (True, False):
                options[f"threads={t} spinning={'on' if spin else 'off'}"] = s.session(
                    size, 1, threads=t, spinning=spin
                )
        candidates: dict[str, Callable[[], Any]] = {k: partial(v.run, None, {"images": x}) for k, v in options.items()}
        candidates["pytorch"] = s.torch_forward(x, torch_default)
        timed = time_candidates(candidates, args.rounds, args.iters)
        results["options"] = {
            k: {**v["latency_s"], "speedup_vs_pytorch": compare(timed, "pytorch", k)["median"]}
            for k, v in timed.items()
        }
    if not args.no_gate:
        from xray_exp.bench.gate_pair import run_gate_pair  # lazy: only on this path

        results["gate"] = run_gate_pair(
            work, s.onnx[(size, 1)], s.gray, args.gate_imgsz, args.rounds, args.gate_iters, args.classifier_onnx
        )
    results["load_average_before_after"] = [load_before, load_average()]
    return results, settings


def inference_report_tables(results: dict[str, Any]) -> str:
    parts = []
    if "gate" in results:
        from xray_exp.bench.gate_pair import gate_pair_table  # lazy: only on this path

        parts.append(gate_pair_table(results["gate"]))
    if "forward" not in results:  # --gate-only
        loads = results.get("load_average_before_after")
        return "\n\n".join([*parts, f"load average (1 min) before/after: {loads[0]} / {loads[1]}" if loads else ""])
    for kind in ("forward", "predict"):
        rows = []
        for key, entry in results[kind].items():
            size, b = key.split("/")
            for name, stats in entry.items():
                if name.startswith("speedup"):
                    continue
                rows.append(
                    [
                        size,
                        b.removeprefix("b"),
                        name,
                        stats["median"] * 1000,
                        stats["min"] * 1000,
                        stats["images_per_s"],
                        entry["speedup_onnxruntime_vs_pytorch"]["median"] if name == "onnxruntime" else None,
                    ]
                )
        parts.append(
            f"{kind}:\n"
            + format_text_table(["px", "batch", "runtime", "median ms", "min ms", "images/s", "ORT speed-up"], rows)
        )
    rows = [
        [
            t,
            v["pytorch"]["median"] * 1000,
            v["onnxruntime"]["median"] * 1000,
            v["speedup_onnxruntime_vs_pytorch"]["median"],
        ]
        for t, v in results["threads"].items()
    ]
    parts.append(
        "same threads, forward, batch 1:\n"
        + format_text_table(["threads", "PyTorch ms", "ONNX Runtime ms", "ORT speed-up"], rows)
    )
    if results["options"]:
        rows = [
            [k, v["median"] * 1000, v["min"] * 1000, v["speedup_vs_pytorch"]] for k, v in results["options"].items()
        ]
        parts.append(
            "ONNX Runtime session options, forward, batch 1:\n"
            + format_text_table(["session", "median ms", "min ms", "speed-up vs PyTorch"], rows)
        )
    rows = [[t["what"], t["speedup"], f">= {t['target']}", t["verdict"]] for t in results["targets"]]
    parts.append(
        "targets (ONNX Runtime vs PyTorch, out of the box):\n"
        + format_text_table(["comparison", "speed-up", "target", "verdict"], rows)
    )
    parts.append(
        "parity, max |ORT - PyTorch| of the raw output: "
        + ", ".join(
            f"{k} px: boxes {v['box_px']:.1e} px, scores {v['score']:.1e}" for k, v in results["parity"].items()
        )
    )
    loads = results.get("load_average_before_after")
    if loads:
        parts.append(f"load average (1 min) before/after: {loads[0]} / {loads[1]}")
    return "\n\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
