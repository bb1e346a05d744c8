"""Ray: the cluster connection, Ray Train and Ray Tune.

    cluster.py                    THE module that starts or joins Ray (ray.init): address, token auth
    train_driver.py, train_worker.py   data-parallel training (`python -m xray_exp.ray_main mode=train`)
    tune_driver.py, tune_trial.py, tune_space.py, tune_results.py   hyper-parameter search (`mode=tune`)
    checkpoints.py                what a Ray checkpoint of an Ultralytics run holds (Train and Tune alike)
    storage.py                    `ray.storage_path`: a shared folder or URI every node reads
    ray_compat.py                 the only use of Ray's private names (re-reading RAY_* after an import)

Runs start, fit and finish through xray_exp.runs.lifecycle like a single run; Ultralytics is reached only
through xray_exp.yolo, MLflow only through xray_exp.mlops.
"""
