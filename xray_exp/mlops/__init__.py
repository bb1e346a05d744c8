"""The MLflow seam: the only package of xray_exp that imports `mlflow`."""
