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
from omegaconf import DictConfig

from xray_exp import CONF_DIR
from xray_exp.config.overrides import schema_key_paths, split_override, suggest
from xray_exp.config.schema import PredictConfig
from xray_exp.config.store import register_configs
from xray_exp.errors import exit_on_user_error, exit_with_errors

log = logging.getLogger("xray_exp.predict")
PREDICT_CONF_DIR = CONF_DIR / "predict"
register_configs()


@hydra.main(config_path=str(PREDICT_CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    from xray_exp.inference.run import predict_from_config  # lazy: heavy (numpy)

    with exit_on_user_error():
        predict_from_config(cfg)


def unknown_key_messages(args: list[str]) -> list[str]:
    """One message per override whose key PredictConfig does not have, with the closest keys."""
    paths, _ = schema_key_paths(PredictConfig)
    messages = []
    for arg in args:
        parsed = split_override(arg)
        if parsed is None or parsed[1] in paths or parsed[1].split(".")[0] == "hydra":
            continue
        hints = suggest(parsed[1], paths)
        hint = f" (did you mean {' or '.join(hints)}?)" if hints else ""
        messages.append(
            f"unknown key '{parsed[1]}' in '{arg}'{hint}. Fix: `python -m xray_exp.predict --cfg job` prints every key."
        )
    return messages


def cli() -> None:
    """Unknown keys caught with a did-you-mean before Hydra composes anything."""
    errors = unknown_key_messages(sys.argv[1:])
    if errors:
        exit_with_errors(errors)
    main()


if __name__ == "__main__":
    cli()
