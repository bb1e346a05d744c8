"""Ultralytics' top-level `yolo train` names and the config keys they stand for (standard library only: the
CLI and the service both read it, and the service has no Hydra).

    from xray_exp.config.override_shortcuts import SHORTCUTS
    SHORTCUTS["epochs"]   # "train.epochs": python -m xray_exp.train epochs=2, or a job's overrides ["epochs=2"]
"""

SHORTCUTS: dict[str, str] = {
    "epochs": "train.epochs",
    "imgsz": "train.imgsz",
    "batch": "hardware.batch",
    "device": "hardware.device",
    "workers": "hardware.workers",
    "data": "dataset.data_yaml",
    "lr0": "train.lr0",
    "patience": "train.patience",
}
