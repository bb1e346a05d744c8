"""Registered models from the command line (the promotion rules live in xray_exp/mlops/registry.py):

python -m xray_exp.models list [yolo12n]              # versions, aliases, objectives
python -m xray_exp.models show yolo12n development    # one version's tags (number or alias)
python -m xray_exp.models promote yolo12n 3 --alias production
"""

from xray_exp.mlops.models_command import main

if __name__ == "__main__":
    raise SystemExit(main())
