"""Benchmarks, one command each; every one prints a table and writes outputs/bench/<name>-<timestamp>.json.

    python -m xray_exp.bench overhead    # python -m xray_exp.train vs bare YOLO(...).train(...), same kwargs
    python -m xray_exp.bench startup     # --help / --cfg job wall time, and no heavy imports at start-up
    python -m xray_exp.bench prepare     # data preparation images/s and its scaling with processes
    python -m xray_exp.bench inference   # ONNX Runtime vs PyTorch on CPU: forward and end-to-end predict
    python -m xray_exp.bench loader      # the training input pipeline: ms per stage, images/s per worker
    python -m xray_exp.bench gpu         # train-only images/s, GPU utilisation, peak memory (skips without a GPU)
    python -m xray_exp.bench bootstrap   # bootstrap confidence intervals: 1000 resamples of 3,000 images
    python -m xray_exp.bench observability  # the service's metrics + audit log: /predict p50 with vs without
    python -m xray_exp.bench ensemble    # an ensemble's predict cost against its members' (fusion overhead)
    python -m xray_exp.bench hostile_load --url URL --pid PID   # legal-but-huge uploads: peak RSS, six clients
    python -m xray_exp.bench <name> --help

Figures, machines and the exact commands are in docs/benchmarks.md. Importing this package is light
(standard library only): the benchmark modules import torch/ultralytics themselves, when they need them.
"""

BENCHMARKS = {
    "overhead": "xray_exp.bench.overhead",
    "startup": "xray_exp.bench.startup",
    "prepare": "xray_exp.bench.prepare",
    "inference": "xray_exp.bench.inference",
    "loader": "xray_exp.bench.loader",
    "gpu": "xray_exp.bench.gpu",
    "bootstrap": "xray_exp.bench.bootstrap",
    "observability": "xray_exp.bench.observability",
    "ensemble": "xray_exp.bench.ensemble",
    "hostile_load": "xray_exp.bench.hostile_load",
}
