"""Two worker processes share one Optuna study on PostgreSQL and its budget of trials."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import optuna
import pytest

from domainflow.config import DatasetSchema, SearchSpace, TrainingConfig, TuningConfig

from ..unit.conftest import labelled, make_flights

pytestmark = pytest.mark.integration

N_TRIALS = 6


def run_worker(worker: int, tuning: TuningConfig, study_name: str, start_together):
    """One worker process: build the data, wait for the other, run its share of the study."""
    from domainflow.data.features import FeaturePipeline, TrainingMatrices
    from domainflow.tuning.search import tune_network

    train, validation = labelled(make_flights(2_000, seed=1)), labelled(make_flights(600, seed=2))
    pipeline = FeaturePipeline.from_schema(DatasetSchema()).fit(train)
    training = TrainingConfig(max_epochs=2, batch_size=128, hidden_sizes=[16], seed=7)
    start_together.wait()  # so neither worker can spend the whole budget before the other starts
    matrices = TrainingMatrices(
        train=pipeline.transform(train), train_labels=train["_label"].to_numpy(),
        validation=pipeline.transform(validation), validation_labels=validation["_label"].to_numpy(),
        numeric_width=pipeline.numeric_width, cardinalities=pipeline.cardinalities,
    )  # fmt: skip
    return tune_network(matrices, training, tuning, study_name, worker=worker)


def test_two_worker_processes_share_one_budget(postgres_database):
    from domainflow.tuning.study import summarize_study

    tuning = TuningConfig(
        n_trials=N_TRIALS,
        storage=postgres_database,
        workers=2,
        pruner="median",
        n_startup_trials=2,
        trial_max_epochs=2,
        space=SearchSpace(learning_rate=(3e-3, 3e-2), embedding_dim=[4], hidden_sizes=[[16], [32, 16]]),
    )
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
        barrier = manager.Barrier(2, timeout=120)
        futures = [pool.submit(run_worker, worker, tuning, "flight-delay-EWR-it", barrier) for worker in (0, 1)]
        results = [future.result(timeout=240) for future in futures]

    summary = summarize_study(postgres_database, "flight-delay-EWR-it")

    assert summary.storage_kind == "postgresql"
    assert summary.n_trials == N_TRIALS == summary.n_complete + summary.n_pruned
    assert [t.number for t in summary.trials] == list(range(N_TRIALS))
    assert {t.worker for t in summary.trials} == {0, 1}
    assert results[0].n_trials == N_TRIALS or results[1].n_trials == N_TRIALS  # the last to finish saw all
    # Nothing left running or queued, and no trial beyond the budget was trained.
    study = optuna.load_study(study_name="flight-delay-EWR-it", storage=postgres_database)
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING))
    trained = [t for t in study.trials if t.params]
    assert len(trained) == N_TRIALS
