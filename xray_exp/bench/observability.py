"""Cost of the service's metrics and audit log: /predict with both on vs both off, in interleaved pairs.

    python -m xray_exp.bench observability --model best.onnx          # 60 pairs, target p50 B/A <= 1.05
    python -m xray_exp.bench observability --model best.onnx --reps 200 --image chest.png

Two apps in one process on the same ONNX detector: A with XRAY_SERVE_METRICS=false and no audit log, B with
GET /metrics, HTTP and service metrics and XRAY_SERVE_AUDIT_LOG (a temporary file, every line flushed). Each
repetition sends the same image to A and to B (abba order, so load drift favours neither) through the full
ASGI stack (FastAPI's TestClient) and takes wall and process CPU time. Also timed: GET /models without tracking
(an audited route that does almost nothing), which isolates the fixed per-request cost of the middleware,
metrics and the audit line. Without --model the demo model is built (needs the train extra).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

from xray_exp.bench.common import (
    envelope,
    format_text_table,
    interleave,
    load_average,
    median,
    paired_ratios,
    ratio,
    verdict,
    write_result,
)
from xray_exp.serve.settings import ServeSettings

NAME = "observability"
TARGET_RATIO = 1.05


def _apps(model: Path, folder: Path):
    from fastapi.testclient import TestClient

    from xray_exp.serve.app import create_app  # lazy: heavy (PIL, cv2, fastapi, highdicom)
    from xray_exp.serve.model_source import load_detector  # lazy: heavy (cv2, onnxruntime)

    detector, info = load_detector(str(model), device="cpu", threads=1)
    off = ServeSettings(job_dir=str(folder / "jobs-a"), metrics=False)
    on = ServeSettings(job_dir=str(folder / "jobs-b"), audit_log=str(folder / "audit.log"))
    return {"A": TestClient(create_app(off, detector, info)), "B": TestClient(create_app(on, detector, info))}


def _time(call) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    response = call()
    assert response.status_code == 200, response.text
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def measure_observability(clients: dict, image: bytes, reps: int, warmup: int = 5) -> dict:
    files = {"file": ("x.png", image, "application/octet-stream")}
    calls = {
        "predict": lambda c: c.post("/predict", files=files),
        "models": lambda c: c.get("/models"),
    }
    out = {}
    for route, call in calls.items():
        for label in ("A", "B"):
            for _ in range(warmup):
                call(clients[label])
        wall = {"A": [0.0] * reps, "B": [0.0] * reps}
        cpu = {"A": [0.0] * reps, "B": [0.0] * reps}
        for label, rep in interleave(["A", "B"], reps, order="abba"):
            wall[label][rep], cpu[label][rep] = _time(lambda label=label, call=call: call(clients[label]))
        out[route] = {
            "wall_ms_p50": {k: median(v) for k, v in wall.items()},
            "cpu_ms_p50": {k: median(v) for k, v in cpu.items()},
            "p50_ratio_b_over_a": ratio(median(wall["B"]), median(wall["A"])),
            "paired_ratio_median": median(paired_ratios(wall["B"], wall["A"])),
            "added_ms_p50": median(wall["B"]) - median(wall["A"]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m xray_exp.bench {NAME}", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="ONNX detector (default: build the demo model, imgsz 320)")
    parser.add_argument("--image", type=Path, help="PNG/JPEG/DICOM to send (default: a synthetic 1024 px film)")
    parser.add_argument("--reps", type=int, default=60)
    parser.add_argument("--out", type=Path, help="folder for the JSON (default outputs/bench)")
    args = parser.parse_args(argv)
    started = time.time()
    logging.getLogger("xray_exp").setLevel(logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="bench-observability-"))
    try:
        model = args.model
        if model is None:
            from xray_exp.serve.demo_model import build_demo_model  # lazy: only on this path

            model = build_demo_model(folder / "model", imgsz=320)[1]
        if args.image:
            image = args.image.read_bytes()
        else:
            import cv2

            from xray_exp.serve.demo_model import synthetic_images  # lazy: only on this path

            image = cv2.imencode(".png", synthetic_images(1, size=1024, seed=7)[0])[1].tobytes()
        load_before = load_average()
        results = measure_observability(_apps(model, folder), image, args.reps)
        audit_lines = sum(1 for _ in (folder / "audit.log").open())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    p = results["predict"]
    rows = [
        [
            route,
            r["wall_ms_p50"]["A"],
            r["wall_ms_p50"]["B"],
            r["added_ms_p50"],
            r["p50_ratio_b_over_a"],
            r["paired_ratio_median"],
            r["cpu_ms_p50"]["A"],
            r["cpu_ms_p50"]["B"],
        ]
        for route, r in results.items()
    ]
    headers = ["route", "A off p50 ms", "B on p50 ms", "B-A ms", "p50 B/A", "paired B/A", "A CPU ms", "B CPU ms"]
    print(format_text_table(headers, rows))
    status = verdict(p["p50_ratio_b_over_a"], TARGET_RATIO)
    print(
        f"\n/predict p50 B/A = {p['p50_ratio_b_over_a']:.3f} (target <= {TARGET_RATIO}): {status}; "
        f"{audit_lines} audit lines written; load average {load_before} -> {load_average()}"
    )
    settings = {
        "model": str(args.model or "demo imgsz 320"),
        "image": str(args.image or "synthetic 1024"),
        "reps": args.reps,
    }
    payload = envelope(
        NAME, argv or [], settings, results, started, verdict=status, load_average=[load_before, load_average()]
    )
    print(f"wrote {write_result(NAME, payload, args.out)}")
    return 0
