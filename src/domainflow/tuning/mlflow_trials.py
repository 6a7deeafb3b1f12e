"""A study in MLflow: each finished trial a child run of the training run, the summary on the parent.

Logging again is safe: a trial that already has a finished child run under the
parent is skipped, and a child left unfinished by an interrupted call is
replaced.
"""

from __future__ import annotations

from datetime import datetime

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from domainflow.training.trainer import MONITOR
from domainflow.tuning.study import TrialRecord, TuningResult

TRIAL_NUMBER_TAG = "domainflow.trial_number"
TRIAL_STATE_TAG = "domainflow.trial_state"
STUDY_TAG = "domainflow.study"
WORKER_TAG = "domainflow.worker"
# A pruned trial was stopped on purpose (KILLED), a failed one broke (FAILED).
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def _millis(moment: datetime | None) -> int | None:
    # Optuna records local wall-clock time without a zone; .timestamp() reads it as local too.
    return None if moment is None else int(moment.timestamp() * 1000)


def _existing_children(client: MlflowClient, experiment_id: str, parent_run_id: str, study: str) -> dict[int, Run]:
    """Child runs of the parent for this study, by trial number."""
    children: dict[int, Run] = {}
    query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}' and tags.`{STUDY_TAG}` = '{study}'"
    page_token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=query, max_results=1000, page_token=page_token)
        for run in page:
            children[int(run.data.tags[TRIAL_NUMBER_TAG])] = run
        page_token = page.token
        if not page_token:
            return children


def _log_trial(client: MlflowClient, experiment_id: str, parent_run_id: str, study: str, trial: TrialRecord) -> str:
    run = client.create_run(
        experiment_id,
        start_time=_millis(trial.datetime_start),
        run_name=f"trial-{trial.number}",
        tags={
            MLFLOW_PARENT_RUN_ID: parent_run_id,
            STUDY_TAG: study,
            TRIAL_NUMBER_TAG: str(trial.number),
            TRIAL_STATE_TAG: trial.state,
            **({} if trial.worker is None else {WORKER_TAG: str(trial.worker)}),
        },
    )
    run_id = run.info.run_id
    end = _millis(trial.datetime_complete) or run.info.start_time
    epochs = sorted(trial.intermediate_values.items())
    metrics = [Metric(f"epoch_{MONITOR}", value, end, step) for step, value in epochs]
    if trial.value is not None:
        metrics.append(Metric(MONITOR, trial.value, end, 0))
    params = [Param(name, str(value)) for name, value in trial.params.items()]
    client.log_batch(run_id, metrics=metrics, params=params)
    client.set_terminated(run_id, status=RUN_STATUS[trial.state], end_time=end)
    return run_id


def log_trials_as_child_runs(tracking_uri: str, parent_run_id: str, result: TuningResult) -> list[str]:
    """One child run per finished trial (`trial-<n>`), by trial number; returns their run ids.

    A trial's `val_auc` is its objective (the best epoch's, or the last reported
    one for a pruned trial); `epoch_val_auc` is stepped by epoch. Trials still
    running or waiting are left for a later call.
    """
    client = MlflowClient(tracking_uri)
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    existing = _existing_children(client, experiment_id, parent_run_id, result.study_name)
    run_ids = []
    for trial in result.trials:
        if trial.state not in RUN_STATUS:
            continue
        child = existing.get(trial.number)
        if child is not None and child.info.status != "RUNNING":
            run_ids.append(child.info.run_id)
            continue
        if child is not None:
            client.delete_run(child.info.run_id)
        run_ids.append(_log_trial(client, experiment_id, parent_run_id, result.study_name, trial))
    return run_ids


def tuning_metrics(result: TuningResult) -> dict[str, float]:
    """The study's figures for the training run: counts, and the best value when a trial completed."""
    metrics = {
        "tuning_trials": float(result.n_trials),
        "tuning_complete": float(result.n_complete),
        "tuning_pruned": float(result.n_pruned),
        "tuning_failed": float(result.n_failed),
    }
    if result.best_value is not None:
        metrics[f"tuning_best_{MONITOR}"] = float(result.best_value)
    return metrics


def tuning_params(result: TuningResult) -> dict[str, str]:
    """The best trial's values as `tuning.best.<name>` params (empty when none completed)."""
    return {f"tuning.best.{name}": str(value) for name, value in result.best_params.items()}


def log_study_summary(tracking_uri: str, parent_run_id: str, result: TuningResult) -> None:
    """Put `tuning_metrics` and `tuning_params` on the parent run."""
    client = MlflowClient(tracking_uri)
    now = int(datetime.now().timestamp() * 1000)
    client.log_batch(
        parent_run_id,
        metrics=[Metric(name, value, now, 0) for name, value in tuning_metrics(result).items()],
        params=[Param(name, value) for name, value in tuning_params(result).items()],
    )
