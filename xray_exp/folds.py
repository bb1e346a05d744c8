"""The k-fold plan of a dataset alone (no training), or a cross-validation finished again.

    python -m xray_exp.folds data=/data/nih/data.yaml folds=5 seed=0 out_dir=outputs/folds/nih
    python -m xray_exp.folds data=/data/nih/data.yaml folds=5 --help         # keys: xray_exp/conf/folds.yaml
    python -m xray_exp.folds cv_dir=outputs/cv/<name>                       # OOF, cv_metrics.json, report.md again
    python -m xray_exp.folds cv_dir=outputs/cv/<name> allow_missing=true    # ... with a fold that failed

The plan: pool = train + val (the test split is held out), patient-grouped (patients from the dataset's
manifest.csv; each image is its own patient when none is known, and the output says so), multi-label
stratified, seeded and deterministic. Prints a table per fold (images, patients, boxes, images per class) and
writes folds.csv (image,patient,fold) and plan/fold<f>.yaml under out_dir. `sweep=cv` plans the same way.
Bad input (folds < 2, more folds than patients, no train/val pool) exits 2 with nothing written.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from xray_exp.config.store import register_configs
from xray_exp.errors import ConfigError, exit_on_user_error

register_configs()


def run_folds(cfg: DictConfig) -> Path:
    """Plan (data=...) or finish (cv_dir=...); returns the folder written."""
    from xray_exp.cv.plan import fold_table, make_fold_plan, write_fold_plan  # lazy: heavy (numpy)

    if cfg.cv_dir:
        from xray_exp.cv.finish import finish_cv  # lazy: only on this path

        finish_cv(cfg.cv_dir, allow_missing=bool(cfg.allow_missing), n_boot=int(cfg.n_boot))
        return Path(cfg.cv_dir).resolve()
    if not cfg.data:
        raise ConfigError(
            "no dataset given. Fix: python -m xray_exp.folds data=/path/to/data.yaml folds=5 (or "
            "cv_dir=outputs/cv/<name> to finish a cross-validation)"
        )

    plan = make_fold_plan(cfg.data, int(cfg.folds), int(cfg.seed), key="folds")
    out_dir = Path(
        cfg.out_dir or Path(cfg.paths.output_dir) / "folds" / f"{plan.data_yaml.parent.name}-k{plan.folds}-s{plan.seed}"
    ).resolve()
    written = write_fold_plan(plan, out_dir)
    print(fold_table(plan), flush=True)
    print(f"FOLDS_CSV={written['folds_csv']}", flush=True)
    return out_dir


@hydra.main(config_path="conf", config_name="folds")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        run_folds(cfg)


if __name__ == "__main__":
    main()
