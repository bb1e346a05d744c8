"""k-fold cross-validation: the fold plan, the CV record (cv.json), out-of-fold predictions and metrics.

    python -m xray_exp.folds data=/data/nih/data.yaml folds=5 seed=0 out_dir=outputs/folds/nih   # the plan alone
    python -m xray_exp.train --multirun sweep=cv cv.folds=5 model=yolo12s dataset=nih_cxr14         # the CV run
    python -m xray_exp.folds cv_dir=outputs/cv/<name>          # finish (OOF, metrics, report) again

Modules: `plan` (folds.csv, per-fold data.yaml), `record` (cv.json: the contract the ensemble reads),
`oof` (out-of-fold predictions and metrics), `finish` (`finish_cv`: OOF, cv_metrics.json, report.md, MLflow).
Light to import: each module imports its heavy libraries inside the functions that need them.
"""
