"""Load test of the detection service on loopback, plus ONNX Runtime vs PyTorch latency at batch 1.

    python scripts/load_test.py                               # demo model (imgsz 320), own server, 8 x 30 s
    python scripts/load_test.py --model best.onnx --pt best.pt --clients 8 --duration 30
    python scripts/load_test.py --url http://127.0.0.1:8000 --no-compare   # a server already running here
    python scripts/load_test.py --server-env XRAY_SERVE_THREADS=1          # one ORT thread per request

Starts `python -m xray_exp.serve` on a free 127.0.0.1 port (unless --url), sends POST /predict from
--clients concurrent clients for --duration seconds (images: the NIH sample in ../shared when present,
else synthetic films), and reports p50/p95/p99 latency, throughput and errors (exit code 1 if any
request failed). Then, with the server idle, times OnnxDetector.predict against Ultralytics'
YOLO(pt).predict on the same images at batch 1 (both end to end: preprocess, inference, NMS), with
--threads threads each (default 1: steady on a shared machine), in interleaved pairs.
Targets are loopback only (127.0.0.0/8, localhost, ::1); request loops are bounded in time.
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NIH_IMAGES = REPO.parent / "shared" / "data" / "nih-cxr14-bbox" / "images"
MAX_DURATION_S = 300


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_images(count: int) -> list[tuple[str, np.ndarray, bytes]]:
    """(name, grey pixels, PNG bytes) of the NIH sample, else synthetic films."""
    import cv2

    from xray_exp.imaging import read_xray

    paths = sorted(NIH_IMAGES.glob("*.png"))[:: max(1, 200 // count)][:count] if NIH_IMAGES.is_dir() else []
    if paths:
        return [(p.name, read_xray(p), p.read_bytes()) for p in paths]
    from xray_exp.serve.demo_model import synthetic_images

    out = []
    for i, gray in enumerate(synthetic_images(count, size=1024, seed=7)):
        out.append((f"synthetic-{i}.png", gray, cv2.imencode(".png", gray)[1].tobytes()))
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, log_path: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_SERVE_")}
    env.update(XRAY_SERVE_MODEL=str(model), XRAY_SERVE_DEVICE="cpu", **extra_env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "xray_exp.serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=REPO,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("server did not start within 90 s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_load(url: str, images, clients: int, duration: float, conf: float | None) -> dict:
    import httpx

    latencies: list[float] = []
    server_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(clients)
    params = {"conf": conf} if conf is not None else {}

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            start_gate.wait()
            deadline = time.monotonic() + duration
            i = index
            while time.monotonic() < deadline:
                name, _, data = images[i % len(images)]
                i += 1
                t0 = time.perf_counter()
                try:
                    response = http.post("/predict", files={"file": (name, data, "image/png")}, params=params)
                    elapsed = (time.perf_counter() - t0) * 1000
                    ok = response.status_code == 200
                    detail = None if ok else f"HTTP {response.status_code}: {response.text[:200]}"
                    inference = response.json()["timings_ms"]["inference"] if ok else None
                except Exception as exc:  # a failed request is an error to report, not a crash
                    elapsed, ok, detail, inference = (time.perf_counter() - t0) * 1000, False, repr(exc), None
                with lock:
                    latencies.append(elapsed)
                    if ok:
                        server_ms.append(inference)
                    else:
                        errors.append(detail)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "duration_s": round(wall, 2),
        "requests": len(latencies),
        "errors": len(errors),
        "error_examples": errors[:5],
        "throughput_rps": round(len(latencies) / wall, 2),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 1),
            "p95": round(percentile(latencies, 95), 1),
            "p99": round(percentile(latencies, 99), 1),
            "max": round(max(latencies, default=float("nan")), 1),
        },
        "server_inference_ms_median": round(statistics.median(server_ms), 2) if server_ms else None,
    }


def compare_backends(onnx: Path, pt: Path, images, repeats: int, conf: float, threads: int) -> dict:
    """End-to-end predict latency at batch 1, `threads` each: OnnxDetector vs YOLO(pt).predict."""
    import cv2

    from xray_exp.yolo.runtime import configure_offline

    if "ultralytics" not in sys.modules:
        settings_dir = Path(tempfile.mkdtemp(prefix="load-test-yolo-"))
        atexit.register(shutil.rmtree, settings_dir, ignore_errors=True)
        configure_offline(settings_dir)
    import torch
    from ultralytics import YOLO

    from xray_exp.inference.onnx_detector import OnnxDetector

    torch.set_num_threads(threads)
    detector = OnnxDetector(onnx, device="cpu", threads=threads)
    torch_model = YOLO(str(pt))
    imgsz = detector.imgsz[0]
    bgr = [cv2.cvtColor(g, cv2.COLOR_GRAY2BGR) for _, g, _ in images]

    stages: dict[str, list[float]] = {}

    def run_ort(im):
        for stage, ms in detector.predict(im[..., 0], conf=conf)[1].items():
            stages.setdefault(stage, []).append(ms)

    def run_torch(im):
        torch_model.predict(im, imgsz=imgsz, conf=conf, verbose=False)

    for im in bgr[:3]:  # warm-up
        run_ort(im)
        run_torch(im)
    # Interleaved pairs: both backends see the same machine load (other processes come and go), and
    # the ratio is taken per pair before the median.
    ort_ms, torch_ms = [], []
    for _ in range(repeats):
        for im in bgr:
            for fn, out in ((run_ort, ort_ms), (run_torch, torch_ms)):
                t0 = time.perf_counter()
                fn(im)
                out.append((time.perf_counter() - t0) * 1000)
    ratios = [t / o for t, o in zip(torch_ms, ort_ms, strict=True)]
    return {
        "imgsz": imgsz,
        "pairs": len(ort_ms),
        "threads": threads,
        "onnxruntime_ms": {"median": round(statistics.median(ort_ms), 2), "min": round(min(ort_ms), 2)},
        "pytorch_ms": {"median": round(statistics.median(torch_ms), 2), "min": round(min(torch_ms), 2)},
        "pytorch_over_onnxruntime": round(statistics.median(ratios), 2),
        "onnxruntime_stage_ms_median": {k: round(statistics.median(v), 2) for k, v in stages.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running service on loopback (default: start one)")
    parser.add_argument("--model", type=Path, help="ONNX model (default: build the demo model)")
    parser.add_argument("--pt", type=Path, help="the .pt for the PyTorch comparison (default: next to --model)")
    parser.add_argument("--imgsz", type=int, default=320, help="demo model input size")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--conf", type=float, default=None, help="conf sent with each request")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the images for the comparison")
    parser.add_argument("--no-compare", action="store_true", help="skip the ONNX Runtime vs PyTorch timing")
    parser.add_argument("--threads", type=int, default=1, help="threads for each backend in the comparison")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for the started server, e.g. XRAY_SERVE_THREADS=1 (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.url and not is_loopback(args.url):
        parser.error("--url must be on this machine (127.0.0.0/8, localhost or ::1)")
    if not 0 < args.duration <= MAX_DURATION_S or args.clients < 1:
        parser.error(f"--duration must be within (0, {MAX_DURATION_S}] s and --clients >= 1")

    workdir = Path(tempfile.mkdtemp(prefix="load-test-"))  # demo model and server log; removed at exit
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    onnx, pt = args.model, args.pt
    if onnx is None and (args.url is None or not args.no_compare):
        from xray_exp.serve.demo_model import build_demo_model

        print(f"building the demo model (imgsz {args.imgsz}) in {workdir} ...", flush=True)
        pt, onnx = build_demo_model(workdir / "model", imgsz=args.imgsz)
    if onnx is not None and pt is None and onnx.with_suffix(".pt").is_file():
        pt = onnx.with_suffix(".pt")
    images = load_images(args.images)
    report: dict = {"images": len(images), "image_source": "nih" if NIH_IMAGES.is_dir() else "synthetic"}

    proc = None
    try:
        url = args.url
        if url is None:
            server_env = dict(item.split("=", 1) for item in args.server_env)
            proc, url = start_server(onnx, workdir / "server.log", server_env)
            report["server_env"] = server_env
        import httpx

        report["model"] = httpx.get(url + "/health", timeout=10).json()["model"]
        print(f"load: {args.clients} clients x {args.duration:.0f} s against {url}/predict", flush=True)
        cpu_before = cpu_seconds(proc.pid) if proc is not None else None
        report["load"] = run_load(url, images, args.clients, args.duration, args.conf)
        if cpu_before is not None and report["load"]["requests"]:  # our own server: its CPU per request
            cpu_ms = (cpu_seconds(proc.pid) - cpu_before) * 1000 / report["load"]["requests"]
            report["load"]["server_cpu_ms_per_request"] = round(cpu_ms, 2)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    if not args.no_compare and onnx is not None and pt is not None:
        print("timing ONNX Runtime vs PyTorch at batch 1 ...", flush=True)
        report["onnx_vs_pytorch"] = compare_backends(onnx, pt, images, args.repeats, args.conf or 0.25, args.threads)

    load = report["load"]
    print(json.dumps(report, indent=2))
    print(
        f"\nthroughput {load['throughput_rps']} req/s, p50 {load['latency_ms']['p50']} ms, "
        f"p95 {load['latency_ms']['p95']} ms, errors {load['errors']} / {load['requests']}"
        + (
            f", server CPU {load['server_cpu_ms_per_request']} ms/request"
            if "server_cpu_ms_per_request" in load
            else ""
        )
    )
    if "onnx_vs_pytorch" in report:
        c = report["onnx_vs_pytorch"]
        print(
            f"batch 1 @ {c['imgsz']}: ONNX Runtime {c['onnxruntime_ms']['median']} ms, PyTorch "
            f"{c['pytorch_ms']['median']} ms (medians) -> PyTorch/ORT = {c['pytorch_over_onnxruntime']}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if load["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
