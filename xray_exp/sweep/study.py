"""Resume a persistent Optuna study: re-running the same sweep command continues where it stopped.

    python -m xray_exp.train --multirun sweep=smoke hydra.sweeper.n_trials=2   # 2 trials
    python -m xray_exp.train --multirun sweep=smoke hydra.sweeper.n_trials=3   # 1 more, not 3

hydra-optuna-sweeper 1.4.0rc3 loads an existing study (`load_if_exists`) but always runs `n_trials` new
ones. Before the sweeper starts, `prepare_resume` reads the study and tells the sweeper how many are left:
`n_trials` counts the study's finished trials (complete, pruned or failed). A trial left RUNNING by an
interrupted sweep is marked FAIL (user attr `xray.interrupted`, not counted) and its parameters are
queued, so it is the first one run again. A seeded sampler gets `seed + <trials so far>`: a restarted
seeded TPE would otherwise propose its first random points again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger("xray_exp.sweep")

INTERRUPTED = "xray.interrupted"
RETRY_OF = "xray.retry_of"


def study_key(storage: str, study_name: str) -> str:
    return f"optuna:{storage}:{study_name}"


def ensure_sqlite_dir(storage: str) -> None:
    if storage.startswith("sqlite:///"):
        Path(storage[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)


def resume_study(storage: str, study_name: str, n_trials: int) -> dict[str, Any]:
    """Fail + re-queue interrupted trials; return {done, requeued, remaining, existing}."""
    import optuna
    from optuna.trial import TrialState

    ensure_sqlite_dir(storage)
    info: dict[str, Any] = {
        "study": study_name,
        "storage": storage,
        "existing": 0,
        "done": 0,
        "requeued": 0,
        "remaining": n_trials,
    }
    backend = optuna.storages.RDBStorage(storage)  # public storage API: the trial's user attr is set through it
    try:
        study = optuna.load_study(study_name=study_name, storage=backend, sampler=optuna.samplers.RandomSampler())
    except KeyError:
        return info  # a new study: the sweeper creates it
    study_id = backend.get_study_id_from_name(study_name)
    trials = study.get_trials(deepcopy=False)
    waiting_retries = {t.user_attrs.get(RETRY_OF) for t in trials if t.state == TrialState.WAITING}
    for trial in trials:
        if trial.state != TrialState.RUNNING:
            continue
        trial_id = backend.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        backend.set_trial_user_attr(trial_id, INTERRUPTED, True)
        study.tell(trial.number, state=TrialState.FAIL)
        if trial.number not in waiting_retries:
            study.enqueue_trial(dict(trial.params), user_attrs={RETRY_OF: trial.number})
            info["requeued"] += 1
    trials = study.get_trials(deepcopy=False)
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    info["done"] = sum(1 for t in trials if t.state in finished and not t.user_attrs.get(INTERRUPTED))
    info["existing"] = len(trials)
    info["remaining"] = max(0, n_trials - info["done"])
    return info


def set_hydra_override(config: DictConfig, key: str, value: Any) -> None:
    """Change a `hydra.sweeper` value before the sweeper is built, as a command-line override would.

    Hydra recomposes every job from `hydra.overrides.hydra` and requires its `hydra.sweeper` to equal the
    controller's: the value goes into both (and so shows in multirun.yaml and each job's .hydra/).
    """
    with read_write(config.hydra), open_dict(config.hydra):
        OmegaConf.update(config, key, value, merge=False)
        kept = [o for o in config.hydra.overrides.hydra if o.lstrip("+~").split("=", 1)[0] != key]
        config.hydra.overrides.hydra = [*kept, f"{key}={value}"]


def prepare_resume(config: DictConfig) -> dict[str, Any] | None:
    """For the Optuna sweeper with a storage and a study name: resume the study and set
    `hydra.sweeper.n_trials` to the trials still to run (before the sweeper is built from it)."""
    sweeper = config.hydra.sweeper
    if "OptunaSweeper" not in str(sweeper.get("_target_", "")):
        return None
    storage, name = sweeper.get("storage"), sweeper.get("study_name")
    if not storage or not name:
        return None
    n_trials = int(sweeper.n_trials)
    info = resume_study(str(storage), str(name), n_trials)
    seed = sweeper.sampler.get("seed") if sweeper.get("sampler") is not None else None
    if info["remaining"] != n_trials:
        set_hydra_override(config, "hydra.sweeper.n_trials", info["remaining"])
    if seed is not None and info["existing"]:
        set_hydra_override(config, "hydra.sweeper.sampler.seed", int(seed) + info["existing"])
    info["n_trials"] = n_trials
    if info["existing"]:
        log.info(
            "Optuna study %r (%s): %d of %d trials done, %d interrupted re-queued; running %d more",
            name,
            storage,
            info["done"],
            n_trials,
            info["requeued"],
            info["remaining"],
        )
    return info
