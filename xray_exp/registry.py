"""The former name of `python -m xray_exp.models`, kept so that existing scripts keep working:

python -m xray_exp.registry list yolo12n        # = python -m xray_exp.models list yolo12n
"""

from xray_exp.mlops.models_command import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m xray_exp.registry"))
