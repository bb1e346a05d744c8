"""The Ultralytics seam: the only package of xray_exp that imports `ultralytics` (tests/package/test_boundaries.py).

    runtime.py     offline set-up before the import, Ultralytics settings, the rank check of DDP workers
    args.py        composed config -> Ultralytics train arguments
    fit.py         model construction and THE training call of every engine (new, resume, Ray rank)
    epochs.py      what every epoch reports (epoch_metrics) and the per-epoch MLflow log the trainer installs
    trainer.py     the trainer subclass (one-channel loader, per-epoch log, a run folder DDP keeps);
                   ray_trainer.py: its variant inside Ray Train's process group
    ultralytics_compat.py  the only use of Ultralytics' private names and internal behaviour (checked per version)
    predict.py     load a .pt/.onnx model, its trained imgsz and class names, batch prediction, annotated samples
    export.py      ONNX export and its parity check against the PyTorch weights
    checkpoint.py  checkpoint files (optimizer state stripped)
    demo.py        random-init demo weights for the service; bench.py: what the benchmarks measure

Importing this package imports nothing heavy: the modules import Ultralytics (and torch) inside functions,
except trainer.py, ray_trainer.py and ultralytics_compat.py, which subclass Ultralytics' trainer at import
(fit imports them late, after the offline set-up and, in a Ray worker, after the rank is known).
"""
