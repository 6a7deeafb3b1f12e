"""Optuna studies: where they are stored, how they sample and prune, and their summary as plain values.

A study is found by its name in its storage, so the same name on the same
database resumes it: finished trials stay, a trial whose worker died is failed
once its heartbeat is older than `2 * HEARTBEAT_SECONDS` and queued again with
the same parameters, and only the rest of the budget is run. (A worker started
within that grace period still counts the dead trial as running, so a retry
should wait longer than it.)
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import optuna
import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from domainflow.config import TuningConfig
from domainflow.redaction import without_passwords

HEARTBEAT_SECONDS = 5
SCHEMA_ATTEMPTS = 5
# A trial of a crashed worker is run again at most this many times.
MAX_RETRIES = 1
# Trials that use up the budget: a failed trial does not, so it is made up for.
USED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
# ... and a queued one (a crashed trial's retry) will, once a worker takes it.
CLAIMED_STATES = (*USED_STATES, TrialState.WAITING)
WORKER_ATTR = "domainflow.worker"
PROCESS_ATTR = "domainflow.process"
# Set on a trial a worker opened after other workers had claimed the whole budget; it never ran.
SKIPPED_ATTR = "domainflow.skipped"


class TuningStorageError(ValueError):
    """`tuning.storage` cannot be opened; the message says why, without the password."""


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING or WAITING
    params: dict[str, float | int | str]
    value: float | None  # the best epoch's val_auc; a pruned trial's last reported one
    intermediate_values: dict[int, float]  # epoch -> val_auc
    datetime_start: datetime | None
    datetime_complete: datetime | None
    worker: int | None = None


@dataclass(frozen=True)
class TuningResult:
    """A study's state as plain values. An empty one (no trials) means no tuning was asked for."""

    study_name: str
    storage_kind: str  # "memory", "sqlite", "postgresql", ...: never the URL, which may hold a password
    best_params: dict[str, float | int | str] = field(default_factory=dict)
    best_value: float | None = None
    n_trials: int = 0
    n_complete: int = 0
    n_pruned: int = 0
    n_failed: int = 0
    # From the first trial's start to the last one's end (a resumed study's span includes the pause).
    elapsed_seconds: float = 0.0
    trials: list[TrialRecord] = field(default_factory=list)


def storage_kind(url: str | None) -> str:
    if url is None:
        return "memory"
    try:
        return make_url(url).get_backend_name()
    except sqlalchemy.exc.ArgumentError:
        raise TuningStorageError(_bad_url_message(url)) from None


def _bad_url_message(url: str) -> str:
    return (
        f"tuning.storage {url.split('://', 1)[0]!r}... is not a database URL; "
        "use null (in memory), sqlite:///path/to/studies.db or postgresql://user@host:5432/db"
    )


def open_storage(url: str | None) -> BaseStorage | None:
    """None for an in-memory study; an RDBStorage with heartbeats for a database URL."""
    if url is None:
        return None
    kind = storage_kind(url)
    engine_kwargs: dict = {"pool_pre_ping": True}
    if kind == "sqlite":
        # Workers sharing a SQLite file wait for its write lock instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 60}
    where = f"tuning.storage {without_passwords(url)}"
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            return _rdb_storage(url, engine_kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as error:
            # Workers opening a fresh database together race to create Optuna's
            # tables ("type studydirection already exists"); the loser retries.
            if attempt == SCHEMA_ATTEMPTS:
                raise TuningStorageError(f"{where}: cannot create Optuna's tables: {_first_line(error)}") from None
            time.sleep(0.2 * attempt)
        except sqlalchemy.exc.ArgumentError:
            raise TuningStorageError(_bad_url_message(url)) from None
        except ImportError:
            raise TuningStorageError(f"{where}: the database driver for {kind!r} is not installed") from None
        except sqlalchemy.exc.OperationalError as error:
            raise TuningStorageError(f"{where} cannot be opened: {_first_line(error)}") from None
    raise AssertionError("unreachable")


def _rdb_storage(url: str, engine_kwargs: dict) -> RDBStorage:
    with warnings.catch_warnings():
        # Heartbeats and the retry callback are marked experimental since Optuna 2.8.
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_SECONDS,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
        )


def _first_line(error: sqlalchemy.exc.DBAPIError) -> str:
    return str(error.orig or error).strip().splitlines()[0]


def build_pruner(tuning: TuningConfig) -> optuna.pruners.BasePruner:
    """Prune on validation AUC per epoch, once `n_startup_trials` trials have completed."""
    if tuning.pruner == "median":
        # The first epoch is too noisy to judge a trial by.
        return optuna.pruners.MedianPruner(n_startup_trials=tuning.n_startup_trials, n_warmup_steps=1)
    if tuning.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=tuning.trial_max_epochs)
    return optuna.pruners.NopPruner()


def build_sampler(tuning: TuningConfig, worker: int, trials_before: int) -> optuna.samplers.TPESampler:
    """TPE seeded from `sampler_seed`, the worker index and the trials already in the study.

    With one seed for all, workers started together and a resumed worker would
    draw the same random start-up points again.
    """
    seed = None
    if tuning.sampler_seed is not None:
        seed = int(np.random.SeedSequence([tuning.sampler_seed, worker, trials_before]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tuning.n_startup_trials)


def open_study(tuning: TuningConfig, study_name: str, worker: int = 0) -> optuna.Study:
    """Create the study, or load it when the storage already holds one of that name."""
    storage = open_storage(tuning.storage)
    trials_before = 0
    if storage is not None:
        try:
            study_id = storage.get_study_id_from_name(study_name)
            trials_before = len(storage.get_all_trials(study_id, deepcopy=False))
        except KeyError:
            pass
    return optuna.create_study(
        direction="maximize",
        study_name=study_name,
        storage=storage,
        sampler=build_sampler(tuning, worker, trials_before),
        pruner=build_pruner(tuning),
        load_if_exists=True,
    )


def count_budget_used(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=USED_STATES))


def _record(trial: FrozenTrial) -> TrialRecord:
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        params=dict(trial.params),
        value=trial.value,
        intermediate_values={int(step): float(v) for step, v in trial.intermediate_values.items()},
        datetime_start=trial.datetime_start,
        datetime_complete=trial.datetime_complete,
        worker=trial.user_attrs.get(WORKER_ATTR),
    )


def summarize(study: optuna.Study, kind: str) -> TuningResult:
    """The trials that ran, by number: not the ones a worker opened after the budget was spent."""
    ran = [t for t in study.get_trials(deepcopy=False) if SKIPPED_ATTR not in t.user_attrs]
    complete = [t for t in ran if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value, default=None)
    starts = [t.datetime_start for t in ran if t.datetime_start]
    ends = [t.datetime_complete for t in ran if t.datetime_complete]
    return TuningResult(
        study_name=study.study_name,
        storage_kind=kind,
        best_params=dict(best.params) if best else {},
        best_value=best.value if best else None,
        n_trials=len(ran),
        n_complete=len(complete),
        n_pruned=sum(t.state == TrialState.PRUNED for t in ran),
        n_failed=sum(t.state == TrialState.FAIL for t in ran),
        elapsed_seconds=(max(ends) - min(starts)).total_seconds() if starts and ends else 0.0,
        trials=[_record(t) for t in sorted(ran, key=lambda t: t.number)],
    )


def summarize_study(storage: str | None, study_name: str) -> TuningResult:
    """Read back a study that several workers ran on one database `storage`."""
    if storage is None:
        raise TuningStorageError("tuning.storage is null: an in-memory study cannot be read from another process")
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        where = f"tuning.storage {without_passwords(storage)}"
        raise TuningStorageError(f"{where} holds no study named {study_name!r}") from None
    return summarize(study, storage_kind(storage))


def summarize_tuning(worker_results: list[TuningResult], tuning: TuningConfig) -> TuningResult:
    """The whole study once every worker finished: read back from the storage the workers shared."""
    if len(worker_results) == 1 or tuning.n_trials == 0:
        return worker_results[0]
    return summarize_study(tuning.storage, worker_results[0].study_name)
