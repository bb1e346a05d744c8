"""Environment switches that libraries read when they load: offline, no telemetry (a shared base, no imports).

Hospital networks: no downloads, no update checks, no auto-install, no telemetry. Set them before importing
the library (Ultralytics' own settings folder: xray_exp/yolo/runtime.py configure_offline):

    from xray_exp.offline import disable_telemetry
    disable_telemetry()                 # ONNX Runtime, MLflow, Ray, Hugging Face: no telemetry from here on
    with environment_variable("XRAY_EXP_EPOCH_LOG", path): ...   # one variable for a block (children inherit it)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# Telemetry switches, read by each library when it loads: set before the import.
TELEMETRY_ENV = {
    # ONNX Runtime: without it every InferenceSession resolves mobile.events.data.microsoft.com (DNS);
    # ort.disable_telemetry_events() does not stop that, the variable does.
    "ORT_DISABLE_TELEMETRY": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",  # the cross-tool convention (honoured by several libraries)
}
OFFLINE_ENV = {
    "YOLO_OFFLINE": "1",  # Ultralytics: treat the machine as offline (no update/asset checks)
    "YOLO_AUTOINSTALL": "false",  # Ultralytics: never pip-install missing packages
    "HF_HUB_OFFLINE": "1",
    **TELEMETRY_ENV,
}


@contextlib.contextmanager
def environment_variable(name: str, value: str | None) -> Iterator[None]:
    """Set (or, with None, unset) one environment variable for the duration; processes started meanwhile
    (Ultralytics' DDP re-launch) inherit it."""
    before = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def disable_telemetry() -> None:
    """Set TELEMETRY_ENV in this process (and so in its children); call before importing those libraries."""
    os.environ.update(TELEMETRY_ENV)
