"""python -m xray_exp.prepare dataset=vindr_cxr|nih_cxr14|coco|csv|voc source=/path/to/data [key=value ...]

Examples:
    python -m xray_exp.prepare dataset=nih_cxr14 source=/data/nih out_dir=/data/yolo/nih
    python -m xray_exp.prepare dataset=vindr_cxr source=/data/vinbigdata fusion.iou_thr=0.5 \\
        fusion.method=wbf longest_side=1024 split.val=0.15 split.test=0.15 workers=8
    python -m xray_exp.prepare dataset=vindr_cxr source=/data/vinbigdata strict=true   # fail on any problem
    python -m xray_exp.prepare dataset=coco source=/data/export     # annotations.json + images/
    python -m xray_exp.prepare dataset=csv source=/data/export      # annotations.csv + images/
    python -m xray_exp.prepare dataset=voc source=/data/export      # Annotations/*.xml + JPEGImages/ or images/

Keys: xray_exp/conf/prepare/prepare.yaml and xray_exp/conf/prepare/dataset/*.yaml; schema: xray_exp/prepare/config.py.
Exit status 2 with `ERROR: <message>` naming the file/field when preparation fails (any problem, with strict=true).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from xray_exp.errors import exit_on_user_error
from xray_exp.prepare.config import CONF_DIR, prepare_config_object, register_prepare_configs

register_prepare_configs()


@hydra.main(config_path=str(CONF_DIR), config_name="prepare")
def main(cfg: DictConfig) -> None:
    from xray_exp.prepare.pipeline import run_prepare  # lazy: heavy (yaml)
    from xray_exp.prepare.report import console_summary  # lazy: heavy (numpy)

    with exit_on_user_error():
        report = run_prepare(prepare_config_object(cfg))
    print(console_summary(report), flush=True)


if __name__ == "__main__":
    main()
