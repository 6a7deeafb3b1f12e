"""Trials as MLflow child runs of the training run, logged once, and the study's figures on the parent."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from mlflow import MlflowClient

from domainflow.tuning.mlflow_trials import log_study_summary, log_trials_as_child_runs, tuning_metrics
from domainflow.tuning.study import TrialRecord, TuningResult

START = datetime(2026, 5, 4, 12, 0, 0)
PARAMS = {"learning_rate": 0.004, "dropout": 0.1, "embedding_dim": 8, "hidden_sizes": "128x64"}


def trial(number: int, state: str, value: float | None, epochs: dict[int, float]) -> TrialRecord:
    started = START + timedelta(minutes=number)
    return TrialRecord(
        number=number,
        state=state,
        params=PARAMS,
        value=value,
        intermediate_values=epochs,
        datetime_start=started,
        datetime_complete=None if state == "RUNNING" else started + timedelta(seconds=30),
        worker=number % 2,
    )


RESULT = TuningResult(
    study_name="flight-delay-EWR-abc",
    storage_kind="postgresql",
    best_params=PARAMS,
    best_value=0.74,
    n_trials=4,
    n_complete=1,
    n_pruned=1,
    n_failed=1,
    elapsed_seconds=210.0,
    trials=[
        trial(0, "COMPLETE", 0.74, {0: 0.70, 1: 0.74}),
        trial(1, "PRUNED", 0.61, {0: 0.60, 1: 0.61}),
        trial(2, "FAIL", None, {}),
        trial(3, "RUNNING", None, {0: 0.65}),
    ],
)


@pytest.fixture
def parent(mlflow_store, request) -> tuple[MlflowClient, str]:
    tracking_uri, artifact_root = mlflow_store
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment(request.node.name, artifact_location=artifact_root)
    return client, client.create_run(experiment_id, run_name="EWR").info.run_id


def test_each_finished_trial_becomes_a_child_run_with_its_state(mlflow_store, parent):
    client, parent_id = parent

    run_ids = log_trials_as_child_runs(mlflow_store[0], parent_id, RESULT)

    runs = [client.get_run(run_id) for run_id in run_ids]
    assert [r.info.run_name for r in runs] == ["trial-0", "trial-1", "trial-2"]  # the running one waits
    assert all(r.data.tags["mlflow.parentRunId"] == parent_id for r in runs)
    assert [r.data.tags["domainflow.trial_state"] for r in runs] == ["COMPLETE", "PRUNED", "FAIL"]
    assert [r.info.status for r in runs] == ["FINISHED", "KILLED", "FAILED"]
    complete, pruned, _ = runs
    assert complete.data.params == {k: str(v) for k, v in PARAMS.items()}
    assert complete.data.metrics["val_auc"] == pytest.approx(0.74) and pruned.data.metrics["val_auc"] == 0.61
    history = client.get_metric_history(complete.info.run_id, "epoch_val_auc")
    assert [(m.step, m.value) for m in history] == [(0, 0.70), (1, 0.74)]
    assert complete.info.start_time == int(START.timestamp() * 1000)
    assert complete.info.end_time - complete.info.start_time == 30_000


def test_logging_again_adds_no_duplicates_and_replaces_an_interrupted_child(mlflow_store, parent):
    client, parent_id = parent
    first = log_trials_as_child_runs(mlflow_store[0], parent_id, RESULT)
    client.set_terminated(first[1], status="RUNNING")  # as if the last call died while logging trial 1

    again = log_trials_as_child_runs(mlflow_store[0], parent_id, RESULT)

    assert again[0] == first[0] and again[2] == first[2]
    assert again[1] != first[1] and client.get_run(again[1]).info.status == "KILLED"
    children = client.search_runs(
        [client.get_run(parent_id).info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'"
    )
    assert sorted(r.info.run_id for r in children) == sorted(again)


def test_study_summary_lands_on_the_parent(mlflow_store, parent):
    client, parent_id = parent

    log_study_summary(mlflow_store[0], parent_id, RESULT)

    data = client.get_run(parent_id).data
    assert data.metrics == {
        "tuning_best_val_auc": 0.74,
        "tuning_trials": 4.0,
        "tuning_complete": 1.0,
        "tuning_pruned": 1.0,
        "tuning_failed": 1.0,
    }
    assert data.params["tuning.best.hidden_sizes"] == "128x64" and data.params["tuning.best.learning_rate"] == "0.004"


def test_no_tuning_logs_no_children_and_no_best_value(mlflow_store, parent):
    empty = TuningResult(study_name="s", storage_kind="memory")

    assert log_trials_as_child_runs(mlflow_store[0], parent[1], empty) == []
    assert "tuning_best_val_auc" not in tuning_metrics(empty) and tuning_metrics(empty)["tuning_trials"] == 0
