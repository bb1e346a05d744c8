"""Send what a run's MLflow journal still holds, after an outage that outlived the run (the journal:
xray_exp/mlops/tracker.py; the replay: xray_exp/mlops/upload.py):

    python -m xray_exp.upload outputs/runs/yolo12n-20261126-120000 [--tracking-uri URI]
"""

from xray_exp.mlops.upload import main

if __name__ == "__main__":
    raise SystemExit(main())
