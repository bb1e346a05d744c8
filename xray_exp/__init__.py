"""xray_exp: Hydra-configured chest X-ray detection with Ultralytics YOLO12.

The configs ship inside the package (xray_exp/conf, package data), so an installed wheel finds them:

    from xray_exp import CONF_DIR        # .../site-packages/xray_exp/conf (train.yaml, evaluate.yaml, prepare/...)
"""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent / "conf"
