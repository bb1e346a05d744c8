"""Predict on unlabelled radiographs: findings as CSV/JSON, annotated PNGs, DICOM SRs.

    python -m xray_exp.predict model=models:/yolo12s@development source=/data/unlabelled out_dir=outputs/predict/today
    python -m xray_exp.predict model=best.onnx source='/data/*.dcm' sr=true conf=0.25 save_images=true
    python -m xray_exp.predict model=outputs/runs/<run> source=list.txt        # a run folder; a list file
    python -m xray_exp.predict model=best.onnx source=dicomweb:http://pacs:8042/dicom-web/studies/<uid> sr=true
    python -m xray_exp.predict --help

Keys: xray_exp/conf/predict/predict.yaml (schema PredictConfig, xray_exp/config/schema.py); an unknown key
fails before anything runs and names the closest ones. Run again with the same out_dir to resume.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from xray_exp import CONF_DIR
from xray_exp.config.schema import PredictConfig
from xray_exp.errors import XrayExpError

log = logging.getLogger("xray_exp.predict")
PREDICT_CONF_DIR = CONF_DIR / "predict"
ConfigStore.instance().store(name="predict_schema", node=PredictConfig)


@hydra.main(config_path=str(PREDICT_CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    from xray_exp.inference.run import predict_from_config

    try:
        predict_from_config(cfg)
    except XrayExpError as exc:
        log.error("%s", exc)
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)


def cli() -> None:
    """Unknown keys caught with a did-you-mean (xray_exp/config/overrides.py), then Hydra."""
    from xray_exp.config.overrides import unknown_key_errors

    errors = unknown_key_errors(sys.argv[1:], PredictConfig, PREDICT_CONF_DIR)
    for message in errors:
        print(f"ERROR: {message}", file=sys.stderr)
    if errors:
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
