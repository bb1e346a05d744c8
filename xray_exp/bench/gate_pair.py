"""The normal/abnormal gate's cost: the detector alone vs the detector + classifier gate, timed side by side.

    python -m xray_exp.bench inference --gate-only --imgsz 640 --gate-imgsz 224    # the pair only (~1-2 min)
    python -m xray_exp.bench inference                                               # every section + the pair
    python -m xray_exp.bench inference --gate-only --detector-onnx det/best.onnx --classifier-onnx cls/best.onnx

Both run in ONNX Runtime as the service runs them: `inference.onnx_detector.OnnxDetector` (the detector alone) and
`inference.gated_onnx_detector.GatedOnnxDetector` (the same detector.onnx + classifier.onnx + gate.json: what the
registered `<detector>-gated` pair serves), and the classifier's pass alone (`OnnxClassifier`); the detector
alone and the pair once more with every session's spin-waiting off (two sessions' spinning pools share the
cores). Each call is one ~1024 px synthetic film, end to end (pre-processing, network, NMS, gate). The
classifier runs at its own image size (`--gate-imgsz`, smaller than the detector's; a given classifier's own
size). Demo weights (random, BatchNorm calibrated) unless ONNX files are given: the cost depends on the
architectures and image sizes, not on what the weights learned. Interleaved rounds (ABBA order); p50/p99
over all calls; ratios gated / alone of the p50s, of the p99s and the median of the per-round ratios.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from xray_exp.bench.common import format_text_table, load_average, paired_ratios, summarize
from xray_exp.bench.timing import time_candidates

GATE = {"low": 0.1, "high": 0.9, "mode": "multiply", "no_finding_class": None}
ALONE, GATED, CLASSIFIER = "detector alone", "detector + gate", "classifier alone"
# The same two, every ONNX Runtime session without spin-waiting: two sessions' spinning thread pools take turns
# on the same cores in the pair (one session's workers still spin while the next session runs).
ALONE_NO_SPIN, GATED_NO_SPIN = "detector alone, no spinning", "detector + gate, no spinning"
CONF, IOU = 0.25, 0.7


def gate_pair_folder(
    work: Path, detector_onnx: Path, gray: list[np.ndarray], gate_imgsz: int, classifier_onnx: Path | None = None
) -> Path:
    """<work>/gated: detector.onnx (a copy), classifier.onnx (`classifier_onnx`, else a demo YOLO12n-cls at
    gate_imgsz), gate.json."""
    folder = work / "gated"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(detector_onnx, folder / "detector.onnx")
    if classifier_onnx is None:
        from xray_exp.yolo.demo import write_demo_classifier  # lazy: only on this path

        _, classifier_onnx = write_demo_classifier(work / f"classifier-{gate_imgsz}", gray, imgsz=gate_imgsz)
    shutil.copyfile(classifier_onnx, folder / "classifier.onnx")
    (folder / "gate.json").write_text(json.dumps(GATE))
    return folder


def percentile_ms(times_s: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(times_s, dtype=np.float64), q) * 1000) if times_s else float("nan")


def measure_gate_pair(folder: Path, gray: list[np.ndarray], rounds: int, iters: int) -> dict[str, Any]:
    """p50/p99 (ms) of each candidate, the gated / alone ratios, the gate's own share (timings_ms.gate)."""
    from xray_exp.inference.gated_onnx_detector import GatedOnnxDetector  # lazy: heavy (cv2, onnxruntime)
    from xray_exp.inference.onnx_classifier import OnnxClassifier  # lazy: heavy (cv2, onnxruntime)
    from xray_exp.inference.onnx_detector import OnnxDetector  # lazy: heavy (cv2, onnxruntime)

    alone = OnnxDetector(folder / "detector.onnx", device="cpu")
    gated = GatedOnnxDetector(folder, device="cpu")
    classifier = OnnxClassifier(folder / "classifier.onnx", device="cpu")
    alone_ns, gated_ns = OnnxDetector(folder / "detector.onnx", device="cpu"), GatedOnnxDetector(folder, device="cpu")
    assert isinstance(gated_ns.detector, OnnxDetector)  # a detector.onnx pair (an ensemble has no one session)
    alone_ns.session = gated_ns.detector.session = no_spinning_session(folder / "detector.onnx")
    gated_ns.classifier.session = no_spinning_session(folder / "classifier.onnx")
    seen: dict[str, int] = dict.fromkeys((ALONE, GATED, CLASSIFIER, ALONE_NO_SPIN, GATED_NO_SPIN), 0)
    gate_ms: list[float] = []
    probs: list[float] = []

    def film(name: str) -> np.ndarray:  # every candidate goes through the same films in the same order
        seen[name] += 1
        return gray[seen[name] % len(gray)]

    def run_gated():
        _, timings = gated.predict(film(GATED), conf=CONF, iou=IOU)
        gate_ms.append(timings["gate"])
        probs.append(float(gated.last_probability or 0.0))

    timed = time_candidates(
        {
            ALONE: lambda: alone.predict(film(ALONE), conf=CONF, iou=IOU),
            GATED: run_gated,
            CLASSIFIER: lambda: classifier.abnormal_probability(film(CLASSIFIER)),
            ALONE_NO_SPIN: lambda: alone_ns.predict(film(ALONE_NO_SPIN), conf=CONF, iou=IOU),
            GATED_NO_SPIN: lambda: gated_ns.predict(film(GATED_NO_SPIN), conf=CONF, iou=IOU),
        },
        rounds,
        iters,
    )
    return {
        "detector_imgsz": int(np.max(alone.imgsz)),
        "classifier_imgsz": classifier.imgsz,
        "gate": GATE,
        **pair_summary(timed),
        "gate_ms_inside_gated_p50": float(np.median(gate_ms)) if gate_ms else float("nan"),
        "probabilities_seen": [min(probs), max(probs)] if probs else [],
    }


def no_spinning_session(path: Path):
    """A default CPU session of `path` whose intra-op threads do not spin-wait between operators."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def pair_summary(timed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """From time_candidates' output (ALONE, GATED, CLASSIFIER; ALONE_NO_SPIN, GATED_NO_SPIN when timed): p50/p99
    per candidate and the ratios."""
    c = {
        name: {
            "p50_ms": percentile_ms(t["times_s"], 50),
            "p99_ms": percentile_ms(t["times_s"], 99),
            "n": len(t["times_s"]),
            "times_s": t["times_s"],
            "round_medians_s": t["round_medians_s"],
        }
        for name, t in timed.items()
    }
    ratios = {
        "gated_over_alone_p50": c[GATED]["p50_ms"] / c[ALONE]["p50_ms"],
        "gated_over_alone_p99": c[GATED]["p99_ms"] / c[ALONE]["p99_ms"],
        "gated_over_alone_per_round_median": summarize(
            paired_ratios(c[GATED]["round_medians_s"], c[ALONE]["round_medians_s"])
        )["median"],
        "classifier_over_alone_p50": c[CLASSIFIER]["p50_ms"] / c[ALONE]["p50_ms"],
    }
    if GATED_NO_SPIN in c:
        ratios["no_spinning_gated_over_alone_p50"] = c[GATED_NO_SPIN]["p50_ms"] / c[ALONE_NO_SPIN]["p50_ms"]
        ratios["no_spinning_gated_over_alone_p99"] = c[GATED_NO_SPIN]["p99_ms"] / c[ALONE_NO_SPIN]["p99_ms"]
        ratios["no_spinning_gated_over_spinning_gated_p50"] = c[GATED_NO_SPIN]["p50_ms"] / c[GATED]["p50_ms"]
    return {"candidates": c, "ratios": ratios}


def run_gate_pair(
    work: Path,
    detector_onnx: Path,
    gray: list[np.ndarray],
    gate_imgsz: int,
    rounds: int,
    iters: int,
    classifier_onnx: Path | None = None,
) -> dict[str, Any]:
    print(f"gate pair: classifier {classifier_onnx or f'demo at {gate_imgsz} px'} ...", flush=True)
    started = time.perf_counter()
    folder = gate_pair_folder(work, detector_onnx, gray, gate_imgsz, classifier_onnx)
    return {**measure_gate_pair(folder, gray, rounds, iters), "build_s": time.perf_counter() - started}


def measure_gate_only(args, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """`--gate-only`: the pair alone: --detector-onnx (else a demo detector at the first --imgsz) and
    --classifier-onnx (else a demo classifier at --gate-imgsz)."""
    from xray_exp.serve.demo_model import build_demo_model, synthetic_images  # lazy: heavy (omegaconf, yaml)

    load_before, size = load_average(), args.imgsz[0]
    onnx = args.detector_onnx or build_demo_model(work / f"model-{size}", imgsz=size)[1]
    gray = synthetic_images(args.images, size=1024, seed=1)
    gate = run_gate_pair(work, onnx, gray, args.gate_imgsz, args.rounds, args.gate_iters, args.classifier_onnx)
    settings = {
        "imgsz": size,
        "gate_imgsz": args.gate_imgsz,
        "rounds": args.rounds,
        "iters": args.gate_iters,
        "detector_onnx": str(args.detector_onnx or "demo"),
        "classifier_onnx": str(args.classifier_onnx or "demo"),
    }
    return {"gate": gate, "load_average_before_after": [load_before, load_average()]}, settings


def gate_pair_table(result: dict[str, Any]) -> str:
    rows = [
        [name, f"{stats['p50_ms']:.1f}", f"{stats['p99_ms']:.1f}", stats["n"]]
        for name, stats in result["candidates"].items()
    ]
    r = result["ratios"]
    return (
        f"gate pair (ONNX Runtime, detector {result['detector_imgsz']} px, classifier "
        f"{result['classifier_imgsz']} px, one ~1024 px film per call):\n"
        + format_text_table(["model", "p50 ms", "p99 ms", "calls"], rows)
        + f"\ndetector + gate / detector alone: p50 x{r['gated_over_alone_p50']:.2f}, p99 "
        f"x{r['gated_over_alone_p99']:.2f}, per-round median x{r['gated_over_alone_per_round_median']:.2f}; "
        f"classifier alone / detector alone p50 x{r['classifier_over_alone_p50']:.2f}; the gate inside the "
        f"pair p50 {result['gate_ms_inside_gated_p50']:.1f} ms"
        + (
            f"\nwithout spinning: detector + gate / detector alone p50 x{r['no_spinning_gated_over_alone_p50']:.2f}, "
            f"p99 x{r['no_spinning_gated_over_alone_p99']:.2f}; pair without / with spinning p50 "
            f"x{r['no_spinning_gated_over_spinning_gated_p50']:.2f}"
            if "no_spinning_gated_over_alone_p50" in r
            else ""
        )
    )
