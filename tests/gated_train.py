"""`python -m xray_exp.train` that pauses before chosen epochs, so a test can act between epochs.

    XRAY_GATE_DIR=/tmp/gate XRAY_GATE_EPOCHS=1,3 python tests/gated_train.py debug=smoke train.epochs=6

Before epoch N (1-based) starts it creates `<gate>/epoch-N.ready` and waits (at most 10 minutes) for the
test to create `<gate>/epoch-N.go`. Everything else is the real training entry point.
"""

from __future__ import annotations

import os
import runpy
import time
from pathlib import Path

import xray_exp.yolo.fit as training

GATE_DIR = Path(os.environ["XRAY_GATE_DIR"])
GATED_EPOCHS = {int(e) for e in os.environ["XRAY_GATE_EPOCHS"].split(",")}
WAIT_S = 600
_real_fit = training.fit


def wait_at_gate(trainer) -> None:
    epoch = int(trainer.epoch) + 1
    if epoch not in GATED_EPOCHS:
        return
    (GATE_DIR / f"epoch-{epoch}.ready").touch()
    deadline = time.monotonic() + WAIT_S
    while not (GATE_DIR / f"epoch-{epoch}.go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"nobody opened {GATE_DIR / f'epoch-{epoch}.go'}")
        time.sleep(0.1)


def gated_fit(*args, **kwargs):
    """The real fit, with a trainer that waits at the gate (imported here: after the offline set-up)."""
    from xray_exp.yolo.trainer import XrayDetectionTrainer

    real_init = XrayDetectionTrainer.__init__

    def gated_init(self, *a, **kw):
        real_init(self, *a, **kw)
        self.add_callback("on_train_epoch_start", wait_at_gate)

    XrayDetectionTrainer.__init__ = gated_init
    try:
        return _real_fit(*args, **kwargs)
    finally:
        XrayDetectionTrainer.__init__ = real_init


training.fit = gated_fit

if __name__ == "__main__":
    runpy.run_module("xray_exp.train", run_name="__main__", alter_sys=True)
