"""Measuring helpers shared by the benchmarks: interleaving, medians and ratios, machine facts, tables, JSON.

    from xray_exp.bench.common import interleave, paired_ratios, summarize, write_result
    for label, rep in interleave(["A", "B"], reps=4):      # A0 B0 A1 B1 ...: drift hits both sides alike
        ...
    ratio = summarize(paired_ratios(a_seconds, b_seconds))["median"]

Standard library only. Noisy (shared) machines: report medians of interleaved repetitions and ratios of
runs measured side by side, never a single run.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
# The environment as the user started the benchmark, before this process imported anything that edits it
# (Ultralytics sets OMP_NUM_THREADS=1 in os.environ on import): children start from this, as from a shell.
LAUNCH_ENV = dict(os.environ)


# ---------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values (a benchmark that produced nothing must not look fast)."""
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return statistics.median(values) if values else float("nan")


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, median, min, max, mean and the quartiles of a sample (NaN-free; empty -> n=0 and NaNs)."""
    vals = sorted(float(v) for v in values if v is not None and not math.isnan(float(v)))
    if not vals:
        nan = float("nan")
        return {"n": 0, "median": nan, "min": nan, "max": nan, "mean": nan, "q1": nan, "q3": nan}
    q1, q3 = (statistics.quantiles(vals, n=4, method="inclusive")[i] for i in (0, 2)) if len(vals) > 1 else vals * 2
    return {
        "n": len(vals),
        "median": statistics.median(vals),
        "min": vals[0],
        "max": vals[-1],
        "mean": statistics.fmean(vals),
        "q1": q1,
        "q3": q3,
    }


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; NaN when either is missing or the denominator is 0."""
    try:
        if denominator == 0 or math.isnan(numerator) or math.isnan(denominator):
            return float("nan")
    except TypeError:
        return float("nan")
    return numerator / denominator


def paired_ratios(a: Sequence[float | None], b: Sequence[float | None]) -> list[float]:
    """a[i] / b[i] for each repetition measured side by side (pairs with a missing side are dropped)."""
    if len(a) != len(b):
        raise ValueError(f"paired_ratios: {len(a)} vs {len(b)} measurements")
    out = []
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            continue
        r = ratio(float(x), float(y))
        if not math.isnan(r):
            out.append(r)
    return out


def interleave(labels: Sequence[str], reps: int, order: str = "abab") -> Iterator[tuple[str, int]]:
    """(label, repetition) in measuring order.

    "abab": A0 B0 A1 B1 ... (the same order each round); "abba": A0 B0 B1 A1 A2 B2 ... (every other round
    reversed, so a steady drift in machine load does not favour the side that always goes first).
    """
    if order not in ("abab", "abba"):
        raise ValueError(f"order must be 'abab' or 'abba' (got {order!r})")
    if reps < 0:
        raise ValueError(f"reps must be >= 0 (got {reps})")
    for rep in range(reps):
        round_labels = list(labels) if order == "abab" or rep % 2 == 0 else list(reversed(labels))
        for label in round_labels:
            yield label, rep


def verdict(value: float, limit: float, higher_is_better: bool = False) -> str:
    """PASS/FAIL against a target (NaN -> 'NO DATA')."""
    if value is None or math.isnan(value):
        return "NO DATA"
    ok = value >= limit if higher_is_better else value <= limit
    return "PASS" if ok else "FAIL"


# ---------------------------------------------------------------- machine


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor() elsewhere)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.lower().startswith("model name") and ":" in line:
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    """Where a figure came from: CPU model and cores, memory, OS, Python, load average now."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        info["cgroup_cpu_max"] = Path("/sys/fs/cgroup/cpu.max").read_text().strip()
    except OSError:
        pass
    return info


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# ---------------------------------------------------------------- output


def output_root() -> Path:
    """Project root for outputs: $XRAY_EXP_ROOT (as the train CLI) or the current directory."""
    return Path(os.environ.get("XRAY_EXP_ROOT") or Path.cwd()).resolve()


def default_out_dir() -> Path:
    return output_root() / "outputs" / "bench"


def command_line(name: str, argv: Sequence[str]) -> str:
    """The command that reproduces a result, as a user types it."""
    return shlex.join(["python", "-m", "xray_exp.bench", name, *argv])


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None (strict JSON), paths -> str, dataclasses -> dicts."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return _clean(asdict(value))
    return value


def result_path(name: str, out_dir: Path, now: _dt.datetime | None = None) -> Path:
    """outputs/bench/<name>-<YYYYmmdd-HHMMSS>.json, with -2, -3 ... if that second is taken."""
    stamp = (now or _dt.datetime.now()).strftime(TIMESTAMP_FORMAT)
    path = out_dir / f"{name}-{stamp}.json"
    n = 2
    while path.exists():
        path = out_dir / f"{name}-{stamp}-{n}.json"
        n += 1
    return path


def write_result(
    name: str, payload: dict[str, Any], out_dir: Path | None = None, now: _dt.datetime | None = None
) -> Path:
    """Write one benchmark's JSON (atomic rename; strict JSON) and return its path."""
    out_dir = Path(out_dir or default_out_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    path = result_path(name, out_dir, now)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_clean(payload), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def envelope(
    name: str, argv: Sequence[str], settings: dict[str, Any], results: dict[str, Any], started: float, **extra: Any
) -> dict[str, Any]:
    """The common JSON layout: what ran, where, when, with which settings, and what came out."""
    return {
        "benchmark": name,
        "command": command_line(name, argv),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "machine": machine_info(),
        "settings": settings,
        **extra,
        "results": results,
    }


def format_text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pastes into docs/benchmarks.md), columns padded for the terminal."""
    cells = [[_format_cell(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(items: Sequence[str]) -> str:
        return "| " + " | ".join(s.ljust(w) for s, w in zip(items, widths, strict=True)) + " |"

    return "\n".join([line(headers), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, cells)])


def _format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


# ---------------------------------------------------------------- processes


def child_env(settings_dir: str | Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for measured children: the launch environment, plus (with `settings_dir`) the offline
    switches and YOLO_CONFIG_DIR that xray_exp.yolo.runtime.configure_offline() would set, plus `extra`."""
    env = dict(LAUNCH_ENV)
    if settings_dir is not None:
        from xray_exp.offline import OFFLINE_ENV  # lazy: only on this path

        env.update(OFFLINE_ENV)
        env["YOLO_CONFIG_DIR"] = str(Path(settings_dir).resolve())
    env.update({k: str(v) for k, v in extra.items()})
    return env


@dataclass
class ProcessTiming:
    """One child process: wall time seen by the parent, CPU time of it and its waited-for descendants."""

    returncode: int
    wall_s: float
    cpu_s: float
    max_rss_mib: float
    timed_out: bool = False


def run_process(
    cmd: Sequence[str],
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    log_path: str | Path | None = None,
    timeout: float | None = None,
) -> ProcessTiming:
    """Run a command, output to `log_path` (or discarded), and time it from spawn to exit.

    CPU seconds (user + system, os.wait4) are less sensitive than wall time to other load on a shared
    machine: both are reported. The child gets its own process group; on timeout the whole group
    (data-loader workers included) is killed.
    """
    out = open(log_path, "wb") if log_path else None  # noqa: SIM115 - closed below
    timer = None
    timed_out = threading.Event()
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            env=env,
            cwd=cwd,
            stdout=out if out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if timeout:

            def kill() -> None:
                timed_out.set()
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

            timer = threading.Timer(timeout, kill)
            timer.daemon = True
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if timer is not None:
            timer.cancel()
        if out is not None:
            out.close()
    rss_kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024
    return ProcessTiming(
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mib=rss_kib / 1024,
        timed_out=timed_out.is_set(),
    )


def tail(path: str | Path, chars: int = 3000) -> str:
    try:
        return Path(path).read_text(errors="replace")[-chars:]
    except OSError:
        return ""
