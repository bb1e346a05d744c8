"""The MLflow seam: the only package of xray_exp that imports `mlflow`.

client.py          the one MlflowClient factory (tracking_client), the bounded HTTP limits, the store's
                   location (default_tracking_uri) and its experiments
tracker.py         one run per training, journaled on disk first (python -m xray_exp.upload)
run_tags.py        reproducibility tags (git, overrides, versions, host) and the config as params
parent_runs.py     sweeps and Ray Tune searches as parent runs, jobs and trials as their children
registry.py        registered names and aliases (registration_target), promotion, the models:/ parser
model_versions.py  the service's read-only registry listing
models_command.py  python -m xray_exp.models list|show|promote
query.py           read-only queries for xray_exp.analysis (runs, metric histories, artifacts)
pyfunc_model.py, onnx_pyfunc.py, upload.py   the logged model and the journal upload
"""
