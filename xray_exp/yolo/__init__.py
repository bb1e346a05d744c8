"""The Ultralytics seam: the only package of xray_exp that imports `ultralytics` (tests/test_boundaries.py).

    runtime.py     offline set-up before the import, Ultralytics settings, the rank check of DDP workers
    args.py        composed config -> Ultralytics train arguments
    fit.py         model construction and the training call, its validation metrics
    trainer.py     the trainer subclass (one-channel loader); ray_trainer.py: its Ray Train DDP variant
    predict.py     load a .pt/.onnx model, its trained imgsz and class names, batch prediction, annotated samples
    export.py      ONNX export and its parity check against the PyTorch weights
    checkpoint.py  checkpoint files (optimizer state stripped)
    demo.py        random-init demo weights for the service; bench.py: what the benchmarks measure

Importing this package imports nothing heavy: the modules import Ultralytics (and torch) inside functions,
except ray_trainer.py, which subclasses Ultralytics' trainer at import (the Ray worker imports it late).
"""
