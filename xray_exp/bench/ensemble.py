"""Ensemble predict cost against the sum of its members' single-image costs (the fusion's share), with and
without flip TTA; the ensembles are kept for the service load test.

    python -m xray_exp.bench ensemble                               # 5 members, 320 px, 8 films, no TTA and TTA
    python -m xray_exp.bench ensemble --members 3 --imgsz 640 --rounds 6 --work-dir outputs/bench/ensembles
    python scripts/load_test.py --model outputs/bench/ensembles/ensemble-5-tta --clients 1 --duration 30 --no-compare

Members: the service's demo yolo12n (random init, calibrated; xray_exp.serve.demo_model) and copies with its
weights jittered by 3% (so the members disagree like fold models), static batch 1 ONNX at --imgsz. Interleaved
rounds (ABBA) of, per film: `members` = every member's OnnxDetector.predict on every view, one after another
(what running the members alone costs), and `ensemble` = EnsembleDetector.predict (the same calls plus view
transforms and one ensemble-boxes fusion). Target: ensemble / members <= 1.05 (fusion adds at most 5%).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xray_exp.bench.common import envelope, format_text_table, load_average, summarize, verdict, write_result
from xray_exp.bench.inference import compare, time_candidates
from xray_exp.ensembles.members import Member, read_onnx_facts
from xray_exp.serve.demo_model import build_demo_model, synthetic_images
from xray_exp.yolo.runtime import configure_offline

NAME = "ensemble"
TARGET_OVERHEAD = 1.05


def jittered(src: Path, dst: Path, seed: int) -> Path:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype == np.float32 and array.size > 16:
            init.CopyFrom(
                numpy_helper.from_array(
                    (array * (1 + 0.03 * rng.standard_normal(array.shape))).astype(np.float32), init.name
                )
            )
    onnx.save(model, str(dst))
    return dst


def build_ensembles(work: Path, n_members: int, imgsz: int, threads: int) -> dict[str, Path]:
    """Two ensemble folders of the same members: no TTA and flip TTA (WBF defaults)."""
    from xray_exp.ensembles.fusion import FusionSettings, tta_views  # lazy: heavy (cv2)
    from xray_exp.ensembles.predict import write_model_folder  # lazy: heavy (cv2, onnxruntime, yaml)

    _, onnx = build_demo_model(work / "demo", imgsz=imgsz)
    members = [
        Member(f"m{k}", "bench", k, 1.0, onnx if k == 0 else jittered(onnx, work / f"m{k}.onnx", k))
        for k in range(n_members)
    ]
    read_onnx_facts(members)
    return {
        label: write_model_folder(members, FusionSettings(), tta_views(tta), work / f"ensemble-{n_members}-{label}")
        for label, tta in (("plain", False), ("tta", True))
    }


def measure_ensemble(args, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    import numpy as np

    from xray_exp.ensembles.detector import EnsembleDetector  # lazy: heavy (cv2, onnxruntime)
    from xray_exp.ensembles.fusion import view_image  # lazy: heavy (cv2)

    folders = build_ensembles(work, args.members, args.imgsz, args.threads)
    films = synthetic_images(args.images, size=1024, seed=1)
    results: dict[str, Any] = {"cases": {}, "targets": []}
    for label, folder in folders.items():
        ensemble = EnsembleDetector(folder, device="cpu", threads=args.threads)
        conf = ensemble.fusion.skip_box_thr
        films_a, films_b = itertools.cycle(films), itertools.cycle(films)  # both see the same films in order

        def members_alone(e=ensemble, c=conf, films_a=films_a):
            gray = next(films_a)
            for member in e.members:
                for view in e.views:
                    member.predict(view_image(gray, view), conf=max(c, 0.25 / len(e.set_weights)))

        def fused(e=ensemble, films_b=films_b):
            e.predict(next(films_b), conf=0.25)

        timed = time_candidates({"members": members_alone, "ensemble": fused}, args.rounds, args.iters)
        stages: dict[str, list[float]] = {}
        boxes = []
        for gray in films:
            for key, value in ensemble.predict(gray, conf=0.25)[1].items():
                stages.setdefault(key, []).append(value)
            boxes.append(sum(len(d[1]) for d in ensemble.raw(gray, conf=ensemble.member_conf(0.25))))
        overhead = compare(timed, "ensemble", "members")["median"]  # ensemble's time / the members' (per round)
        results["cases"][label] = {
            "members": args.members,
            "views": [v.name for v in ensemble.views],
            "members_ms": timed["members"]["latency_s"]["median"] * 1000,
            "ensemble_ms": timed["ensemble"]["latency_s"]["median"] * 1000,
            "ensemble_p99_ms": float(np.percentile(timed["ensemble"]["times_s"], 99)) * 1000,
            "boxes_fused": summarize(boxes)["median"],
            "member_conf": ensemble.member_conf(0.25),
            "overhead": overhead,
            "stages_ms": {k: summarize(v)["median"] for k, v in stages.items()},
            "folder": str(folder),
        }
        results["targets"].append(
            {
                "case": label,
                "overhead": overhead,
                "limit": TARGET_OVERHEAD,
                "verdict": verdict(overhead, TARGET_OVERHEAD),
            }
        )
    results["fusion_by_boxes"] = fusion_by_boxes(args.members)
    settings = {
        "members": args.members,
        "imgsz": args.imgsz,
        "images": args.images,
        "rounds": args.rounds,
        "iters": args.iters,
        "threads": args.threads,
        "load_before": load_average(),
    }
    return results, settings


def fusion_by_boxes(n_sets: int, totals: tuple[int, ...] = (25, 50, 100, 200, 400), reps: int = 15) -> list[dict]:
    """WBF time (ms, median) for `n_sets` sets holding `total` boxes together: lesions seen by every set with jitter
    (what fold models agreeing look like), on a 1024 px image. The fusion's cost grows with the boxes it gets."""
    import numpy as np

    from xray_exp.ensembles.fusion import FusionSettings, fuse  # lazy: heavy (cv2)

    rng = np.random.default_rng(0)
    rows = []
    for total in totals:
        per_set = max(total // n_sets, 1)
        centres = rng.uniform(100, 900, (per_set, 2))
        sets = []
        for _ in range(n_sets):
            c = centres + rng.normal(0, 6, centres.shape)
            boxes = np.hstack([c - 40, c + 40])
            sets.append((boxes, rng.uniform(0.05, 0.95, per_set), rng.integers(0, 8, per_set)))
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fuse(sets, [1.0] * n_sets, 1024, 1024, FusionSettings())
            times.append((time.perf_counter() - t0) * 1000)
        rows.append({"boxes": per_set * n_sets, "fusion_ms": summarize(times)["median"]})
    return rows


def ensemble_report(results: dict[str, Any]) -> str:
    rows = [
        [
            label,
            len(c["views"]),
            f"{c['boxes_fused']:.0f}",
            f"{c['members_ms']:.1f}",
            f"{c['ensemble_ms']:.1f}",
            f"{(c['overhead'] - 1) * 100:+.1f}%",
            f"{c['stages_ms'].get('fusion', float('nan')):.2f}",
            next(t["verdict"] for t in results["targets"] if t["case"] == label),
        ]
        for label, c in results["cases"].items()
    ]
    scaling = format_text_table(
        ["boxes fused", "fusion ms"],
        [[r["boxes"], f"{r['fusion_ms']:.2f}"] for r in results.get("fusion_by_boxes", [])],
    )
    return (
        scaling
        + "\n\n"
        + format_text_table(
            ["case", "views", "boxes fused", "members alone ms", "ensemble ms", "overhead", "fusion ms", "<= +5%"], rows
        )
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m xray_exp.bench ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--images", type=int, default=8, help="distinct synthetic films (1024 px) to cycle through")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--iters", type=int, default=4, help="films per candidate per round")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    parser.add_argument("--work-dir", type=Path, help="keep the ensembles here (default: a temporary folder)")
    parser.add_argument("--out-dir", type=Path, help="JSON folder (default outputs/bench)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the overhead target is missed")
    args = parser.parse_args(argv)
    started = time.time()
    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="xray_bench_ensemble_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)

    configure_offline(work / ".ultralytics")
    try:
        results, settings = measure_ensemble(args, work)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(ensemble_report(results))
    path = write_result(NAME, envelope(NAME, argv, settings, results, started), args.out_dir)
    print(f"wrote {path}")
    return 1 if args.check and any(t["verdict"] != "PASS" for t in results["targets"]) else 0
