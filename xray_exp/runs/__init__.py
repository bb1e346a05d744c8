"""One run lifecycle (set up -> fit -> post-training -> finish) for every engine (docs/architecture.md).

    lifecycle.py       prepare, start, ended, finish_run, register, close_run; Parent and Registration
    single_run.py      a run in this process: `python -m xray_exp.train` and each job of a --multirun
    post_training.py   after training, on best.pt: metrics on post.eval_splits, samples, ONNX export + parity
    summary.py         summary.json, the artifacts a run logs, the one-screen summary

Ray Train (xray_exp.distributed.train_driver) and Ray Tune (xray_exp.distributed.tune_driver, tune_trial) go
through the same functions. Nothing here imports the sweep package: a sweep job is told its parent run.
"""
