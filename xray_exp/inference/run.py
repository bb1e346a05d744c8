"""`python -m xray_exp.predict`: the composed config -> predictor, inputs, batch run, summary on screen.

predict_from_config(cfg)   # cfg: the composed xray_exp/conf/predict/predict.yaml (PredictConfig)
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from xray_exp.errors import ConfigError
from xray_exp.inference.batch import run_predict
from xray_exp.inference.sources import find_inputs

DICOMWEB_PREFIX = "dicomweb:"


def predict_from_config(cfg: DictConfig) -> dict:
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # its per-attribute copy log drowns ours
    from xray_exp.inference.predictor import load_predictor  # lazy: heavy (PIL, highdicom, pydicom, requests)

    if not 0.0 <= cfg.conf <= 1.0 or not 0.0 <= cfg.iou <= 1.0:
        raise ConfigError(f"conf={cfg.conf} and iou={cfg.iou} must be within [0, 1]")
    out_dir = Path(cfg.out_dir).expanduser().resolve()
    predictor = load_predictor(
        cfg.model,
        conf=cfg.conf,
        iou=cfg.iou,
        max_det=cfg.max_det,
        device=cfg.device,
        tracking_uri=cfg.tracking_uri,
        cache_dir=cfg.paths.cache_dir,
        output_dir=cfg.paths.output_dir,
        imgsz=cfg.imgsz,
    )
    sr = None
    if cfg.sr:
        from xray_exp.sr.codes import FindingCodes  # lazy: only on this path
        from xray_exp.sr.files import SrOutput  # lazy: only on this path

        sr = SrOutput(predictor.identity, FindingCodes.load(cfg.sr_codes))
    study = None
    if str(cfg.source).startswith(DICOMWEB_PREFIX):
        from xray_exp.pacs.dicomweb import DicomWeb, parse_study_url  # lazy: only on this path

        base_url, study_uid = parse_study_url(str(cfg.source)[len(DICOMWEB_PREFIX) :])
        study = DicomWeb(base_url, cfg.dicomweb.credentials_file, cfg.dicomweb.timeout_s, cfg.dicomweb.retries)
        folder = study.fetch_study(study_uid, out_dir / "dicomweb" / study_uid)
        inputs = find_inputs(str(folder))
    else:
        inputs = find_inputs(str(cfg.source))
    print(
        f"model {predictor.identity.name} version {predictor.identity.version} ({predictor.path}); "
        f"{len(inputs)} images from {cfg.source}",
        flush=True,
    )
    settings = {
        "conf": cfg.conf,
        "iou": cfg.iou,
        "max_det": cfg.max_det,
        "source": str(cfg.source),
        "save_images": cfg.save_images,
        "sr": cfg.sr,
    }
    summary = run_predict(
        inputs, predictor, out_dir, settings, save_images=cfg.save_images, sr=sr, progress=cfg.progress
    )
    if study is not None and sr is not None and cfg.dicomweb.store_sr:
        stored = study.store_files(sorted((out_dir / "sr").glob("*.dcm")))
        summary["sr_stored"] = stored
        print(f"stored {stored} SR(s) in study {study_uid} at {study.url}", flush=True)
    print(
        f"{summary['predicted']} of {summary['images']} images predicted: {summary['findings']} findings, "
        f"{summary['without_findings']} without findings, {summary['unreadable']} unreadable"
        + (f", {summary['sr_written']} SRs ({summary['sr_errors']} not written)" if cfg.sr else ""),
        flush=True,
    )
    print(f"PREDICTIONS={out_dir / 'predictions.csv'}", flush=True)
    return summary
