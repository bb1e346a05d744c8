"""Sweeps: `--multirun` through Hydra's basic or Optuna sweeper, jobs local or on Ray, tracked in MLflow.

    python -m xray_exp.train --multirun model=yolo12n,yolo12s                 # basic sweeper, one job after another
    python -m xray_exp.train --multirun sweep=yolo12_hparams hardware=gpu     # Optuna TPE, resumable study
    python -m xray_exp.train --multirun sweep=yolo12_hparams hydra/launcher=ray   # trials as Ray tasks
    python -m xray_exp.train --multirun sweep=smoke                           # the machinery in a minute on CPU

Each multirun is one MLflow parent run with a child run per job (`mlflow.parentRunId`); a job that fails
is a FAILED child (error tags + traceback) and the sweep goes on. At the end the leaderboard is printed,
saved as `<sweep dir>/leaderboard.csv` and logged on the parent, and the best job's model is registered
(`tracking.register` rules; alias `development`, `staging` for fine-tunes). Jobs of a multirun do not
register their own models.

Modules: `job` (inside each job: parent tags, failure record), `callbacks` (the Hydra callback),
`study` (Optuna resume), `leaderboard` (ranking, CSV, registration of the best).
"""
