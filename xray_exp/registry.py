"""Registered models from the command line (the registry logic lives in xray_exp/mlops/registry.py):

python -m xray_exp.registry list [yolo12n]              # versions, aliases, objectives
python -m xray_exp.registry show yolo12n development    # one version's tags (number or alias)
python -m xray_exp.registry promote yolo12n 3 --alias production
"""

from xray_exp.mlops.registry import main

if __name__ == "__main__":
    raise SystemExit(main())
