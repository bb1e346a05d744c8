"""Ray Tune for Ultralytics YOLO12 (`python -m xray_exp.ray_main mode=tune`): space.py builds the search,
trial.py runs one trial, driver.py the experiment (MLflow parent/child runs, best config, registry)."""
