"""Legal-but-huge uploads against a running service: peak RSS per input, and ordinary traffic under six
clients sending the worst legal file.

    python -m xray_exp.serve --port 8000 &                 # XRAY_SERVE_MODEL=<best.onnx>
    python -m xray_exp.bench hostile_load --url http://127.0.0.1:8000 --pid $!
    python -m xray_exp.bench hostile_load --url http://127.0.0.1:8000 --pid $! --side 8000 --seconds 20

Phase 1 sends each input of xray_exp.bench.legal_huge once (status, wall ms, server CPU ms, RSS before and
peak RSS of the server process, as scripts/hostile_inputs.py measures them). Phase 2 times ordinary PNG
requests (`--ordinary` closed-loop clients, `--seconds` in all per kind and input, in `--rounds` alternations):
alone, then while `--clients` attacker processes send one huge input in a loop (back to back;
`--honor-retry-after` makes them wait after a 503). The default
side is the largest square 16-bit image within the server's XRAY_SERVE_MAX_PIXEL_BYTES (from /config).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from xray_exp.bench.common import envelope, format_text_table, write_result

ATTACKER = """
import sys, time, httpx
url, data, honor = sys.argv[1], open(sys.argv[2], "rb").read(), sys.argv[3] == "1"
codes = {}
print("ready", flush=True)
with httpx.Client(timeout=120) as client:
    while True:
        r = client.post(url + "/predict", files={"file": ("x", data)})
        codes[r.status_code] = codes.get(r.status_code, 0) + 1
        print(f"{r.status_code}", flush=True)
        if honor and r.status_code == 503:
            time.sleep(float(r.headers.get("retry-after", "1")))
"""


def ordinary_png() -> bytes:
    import cv2

    from xray_exp.serve.demo_model import synthetic_images  # lazy: heavy (omegaconf, yaml)

    return cv2.imencode(".png", synthetic_images(1, size=1024, seed=1)[0])[1].tobytes()


def time_ordinary(url: str, image: bytes, clients: int, seconds: float) -> dict:
    """Closed-loop ordinary clients for `seconds`: requests/s, p50/p99 latency, non-200 count."""
    import httpx

    latencies: list[float] = []
    errors = [0]
    stop_at = time.monotonic() + seconds

    def loop() -> None:
        with httpx.Client(timeout=120) as client:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                response = client.post(url + "/predict", files={"file": ("x.png", image)})
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summarize_latencies(latencies, time.monotonic() - started, errors[0])


def summarize_latencies(latencies: list[float], elapsed: float, errors: int = 0) -> dict:
    ms = np.asarray(latencies) * 1000 if latencies else np.asarray([float("nan")])
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "ok": len(latencies),
        "errors": errors,
        "elapsed_s": elapsed,
        "latencies_s": [round(v, 5) for v in latencies],
    }


def pooled(rounds: list[dict]) -> dict:
    """Several rounds' ordinary traffic as one sample (requests/s over the total time, p99 over all)."""
    out = summarize_latencies(
        [v for r in rounds for v in r["latencies_s"]],
        sum(r["elapsed_s"] for r in rounds),
        sum(r["errors"] for r in rounds),
    )
    for key in ("server_peak_rss_mb", "attacker_cpu_s"):
        if any(key in r for r in rounds):
            out[key] = max(r.get(key, 0) for r in rounds) if key.endswith("mb") else sum(r[key] for r in rounds)
    if any("attacker_status" in r for r in rounds):
        codes: dict = {}
        for r in rounds:
            for code, n in r["attacker_status"].items():
                codes[code] = codes.get(code, 0) + n
        out["attacker_status"] = dict(sorted(codes.items()))
    return out


def drain(url: str, image: bytes, huge: bytes, fast_s: float, timeout_s: float = 180.0) -> None:
    """Wait until the previous phase's queued work is done: the huge input is admitted again (not 503) and
    an ordinary request is answered within fast_s."""
    import httpx

    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=120) as client:
        while time.monotonic() < deadline:
            response = client.post(url + "/predict", files={"file": ("x", huge)})
            if response.status_code != 503:
                break
            time.sleep(float(response.headers.get("retry-after", "1")))
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = client.post(url + "/predict", files={"file": ("x.png", image)})
            if response.status_code == 200 and time.perf_counter() - started < fast_s:
                return


def under_attack(url: str, pid: int | None, image: bytes, data: bytes, args, seconds: float) -> dict:
    """time_ordinary while args.clients attacker processes send `data` in a loop; attackers' status counts."""
    from xray_exp.bench.hostile import _cpu_ms, _reset_peak, _status_kb  # lazy: heavy (PIL, pydicom, requests, tqdm)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(data)
        honor = "1" if args.honor_retry_after else "0"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", ATTACKER, url, str(path), honor],
                stdout=subprocess.PIPE,
                text=True,
                env=os.environ,
            )
            for _ in range(args.clients)
        ]
        codes: dict[str, int] = {}

        def drain(proc) -> None:
            for line in proc.stdout:
                codes[line.strip()] = codes.get(line.strip(), 0) + 1

        try:
            for proc in procs:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            readers = [threading.Thread(target=drain, args=(p,), daemon=True) for p in procs]
            for reader in readers:
                reader.start()
            if pid:
                _reset_peak(pid)
            row = time_ordinary(url, image, args.ordinary, seconds)
            if pid:
                row["server_peak_rss_mb"] = _status_kb(pid, "VmHWM") / 1024
            row["attacker_cpu_s"] = sum(_cpu_ms(p.pid) for p in procs) / 1000
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    row["attacker_status"] = dict(sorted(codes.items()))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the service (loopback)")
    parser.add_argument("--pid", type=int, help="server process id: CPU and peak RSS via /proc")
    parser.add_argument("--side", type=int, help="side of the huge square images (default: the largest legal)")
    parser.add_argument("--clients", type=int, default=6, help="attacker processes (default 6)")
    parser.add_argument("--ordinary", type=int, default=2, help="ordinary closed-loop clients (default 2)")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of each kind per input (default 15)")
    parser.add_argument("--rounds", type=int, default=3, help="alone/attacked alternations per input (default 3)")
    parser.add_argument("--honor-retry-after", action="store_true", help="attackers wait Retry-After after a 503")
    parser.add_argument("--skip-single", action="store_true", help="only the concurrent phase")
    parser.add_argument("--skip-concurrent", action="store_true", help="only the single requests")
    parser.add_argument("--only", nargs="*", help="input names (png16, deflated-dicom, deflated-private): a prefix")
    args = parser.parse_args(argv)
    import cv2
    import httpx

    from xray_exp.bench.hostile import measure_inputs, table  # lazy: heavy (PIL, pydicom, requests, tqdm)
    from xray_exp.bench.legal_huge import (  # lazy: heavy (PIL, pydicom, requests, tqdm)
        largest_legal_side,
        legal_huge_inputs,
    )

    started_at = time.time()
    url = args.url.rstrip("/")
    limits = httpx.get(url + "/config", timeout=30).json()["limits"]
    side = args.side or largest_legal_side(limits["max_pixel_bytes"])
    inputs = {k: v for k, v in legal_huge_inputs(side).items() if not args.only or k.startswith(tuple(args.only))}
    image = ordinary_png()
    results: dict = {"side": side, "limits": limits}
    if not args.skip_single:
        from xray_exp.data.synthetic_dicom import chest_xray_bytes  # lazy: only on this path

        gray = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_GRAYSCALE)
        controls = {
            "control: ordinary PNG": image,
            "control: ordinary DICOM (first: loads pydicom)": chest_xray_bytes(gray),
        }
        rows = measure_inputs(url, inputs, args.pid, controls)
        print(table(rows))
        results["single"] = rows
    if not args.skip_concurrent:
        results["concurrent"] = concurrent_phases(url, image, inputs, args)
    settings = {k: v for k, v in vars(args).items() if k not in ("url", "pid")}
    print(write_result("hostile_load", envelope("hostile_load", argv or sys.argv[1:], settings, results, started_at)))
    return 0


def concurrent_phases(url: str, image: bytes, inputs: dict[str, bytes], args) -> list[dict]:
    """Per input: ordinary traffic alone, then under attack (paired: the machine's other load hits both)."""
    time_ordinary(url, image, args.ordinary, 2.0)  # warm-up
    rows, table_rows = [], []
    share = args.seconds / args.rounds
    for name, data in inputs.items():
        alone, under = [], []
        for _ in range(args.rounds):  # alternating, so the machine's other load hits both alike
            alone.append(time_ordinary(url, image, args.ordinary, share))
            under.append(under_attack(url, args.pid, image, data, args, share))
            drain(url, image, data, 2 * alone[-1]["p99_ms"] / 1000)
        idle, attacked = pooled(alone), pooled(under)
        rows.append({"input": name, "idle": idle, "attacked": attacked})
        table_rows.append(
            [
                f"{args.clients} clients: {name}",
                f"{idle['rps']:.1f} / {attacked['rps']:.1f}",
                f"{attacked['rps'] / idle['rps']:.0%}",
                f"{idle['p99_ms']:.0f} / {attacked['p99_ms']:.0f}",
                f"{attacked['p99_ms'] / idle['p99_ms']:.2f}x",
                f"{attacked.get('server_peak_rss_mb', float('nan')):.0f}",
                f"{attacked['attacker_cpu_s']:.1f}",
                str(attacked["attacker_status"]),
            ]
        )
    headers = [
        "phase",
        "ordinary req/s alone / attacked",
        "share",
        "p99 ms alone / attacked",
        "p99 ratio",
        "server peak RSS MB",
        "attackers' own CPU s",
        "attackers' answers",
    ]
    print(format_text_table(headers, table_rows))
    return rows


if __name__ == "__main__":
    sys.exit(main())
