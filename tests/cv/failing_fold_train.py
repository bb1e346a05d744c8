"""`python -m xray_exp.train` whose training of one chosen CV fold fails, so a test can watch a failed fold.

    XRAY_FAIL_FOLD=1 python tests/cv/failing_fold_train.py --multirun sweep=cv cv.folds=3 debug=smoke

The fit of the fold whose data.yaml is plan/fold<XRAY_FAIL_FOLD>.yaml raises; everything else is the real
training entry point.
"""

from __future__ import annotations

import os
import runpy

import xray_exp.yolo.fit as training

FAIL = f"fold{os.environ['XRAY_FAIL_FOLD']}.yaml"
_real_fit = training.fit


def failing_fit(arch, train_args, *args, **kwargs):
    if str(train_args.get("data", "")).endswith(FAIL):
        raise RuntimeError(f"injected failure for {FAIL}")
    return _real_fit(arch, train_args, *args, **kwargs)


training.fit = failing_fit
runpy.run_module("xray_exp.train", run_name="__main__", alter_sys=True)
