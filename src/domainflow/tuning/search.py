"""The search itself: sample a TrainingConfig, train it briefly, prune it on validation AUC per epoch.

`tune_network` is one worker. Several workers (processes or machines) given
the same `study_name` and database `tuning.storage` share one study and one
budget of `tuning.n_trials` trials; run again with the same name, it runs only
what is left.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.study import MaxTrialsCallback
from optuna_integration import PyTorchLightningPruningCallback

from domainflow.config import SearchSpace, TrainingConfig, TuningConfig
from domainflow.data.features import FeaturePipeline, TrainingMatrices
from domainflow.data.split import TimeSplit
from domainflow.training.params import Params, layers_key, training_overrides
from domainflow.training.trainer import MONITOR, fit_classifier
from domainflow.tuning.study import (
    CLAIMED_STATES,
    PROCESS_ATTR,
    SKIPPED_ATTR,
    USED_STATES,
    WORKER_ATTR,
    TuningResult,
    count_budget_used,
    open_study,
    storage_kind,
    summarize,
)

logger = logging.getLogger(__name__)


class _BudgetSpent(Exception):
    """Ends a trial that another worker's trials left no room for; it is recorded as failed and skipped."""


def sample_params(trial: optuna.Trial, space: SearchSpace) -> Params:
    return {
        "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        "weight_decay": trial.suggest_float("weight_decay", *space.weight_decay, log=True),
        "dropout": trial.suggest_float("dropout", *space.dropout),
        "embedding_dim": trial.suggest_categorical("embedding_dim", space.embedding_dim),
        "hidden_sizes": trial.suggest_categorical("hidden_sizes", [layers_key(s) for s in space.hidden_sizes]),
    }


def trial_config(training: TrainingConfig, tuning: TuningConfig, params: Params) -> TrainingConfig:
    """The final training's config with the sampled values, shortened to a trial's budget.

    A trial runs in one process: the pruning callback reports to the trial
    object in this process, and spawned DDP workers would each hold a copy
    whose reports never reach the study.
    """
    update = {
        **training_overrides(params),
        "max_epochs": tuning.trial_max_epochs,
        "limit_train_batches": tuning.trial_limit_train_batches,
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
    }
    return training.model_copy(update=update)


def _claims_a_slot(trial: optuna.Trial, n_trials: int) -> bool:
    """Whether fewer than `n_trials` trials that use the budget were opened before this one.

    MaxTrialsCallback stops a worker after its trial ends, so two workers that
    finish at the same moment can both open one more; trial numbers are given
    out in order under a lock, so the later of the two sees it is one too many.
    """
    claimed = trial.study.get_trials(deepcopy=False, states=CLAIMED_STATES)
    earlier = [t for t in claimed if t.number < trial.number]
    return len(earlier) < n_trials


def tune_hyperparameters(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    training: TrainingConfig,
    tuning: TuningConfig,
    study_name: str,
    work_root: Path | None = None,
    worker: int = 0,
) -> TuningResult:
    """One worker's share of the study on the split's training and validation rows (see `tune_network`)."""
    matrices = TrainingMatrices.from_split(pipeline, split)
    return tune_network(matrices, training, tuning, study_name, work_root, worker)


def tune_network(
    matrices: TrainingMatrices,
    training: TrainingConfig,
    tuning: TuningConfig,
    study_name: str,
    work_root: Path | None = None,
    worker: int = 0,
) -> TuningResult:
    """Run this worker's share of the study's trials and return the whole study's summary.

    `worker` numbers the workers sharing a study (0, 1, ...): it varies their
    sampler seeds and is recorded on each trial. `tuning.timeout_seconds`
    bounds this call: no trial starts after it, a running one finishes.
    """
    kind = storage_kind(tuning.storage)
    if tuning.n_trials == 0:
        return TuningResult(study_name=study_name, storage_kind=kind)
    started = time.perf_counter()
    study = open_study(tuning, study_name, worker)
    process = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, worker)
        trial.set_user_attr(PROCESS_ATTR, process)
        if not _claims_a_slot(trial, tuning.n_trials):
            trial.set_user_attr(SKIPPED_ATTR, "other workers claimed the whole budget first")
            trial.study.stop()
            raise _BudgetSpent(f"the study's {tuning.n_trials} trials are taken")
        config = trial_config(training, tuning, sample_params(trial, tuning.space))
        pruning = PyTorchLightningPruningCallback(trial, monitor=MONITOR)
        network = fit_classifier(matrices, config, work_root, extra_callbacks=[pruning])
        return network.best_val_auc

    # A failed trial leaves the budget; one stuck RUNNING by a dead worker is
    # failed here once its heartbeat is stale, and queued again (WAITING): the
    # next optimize takes queued trials first, within its n_trials.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats are "experimental" since Optuna 2.9
        optuna.storages.fail_stale_trials(study)
    remaining = tuning.n_trials - count_budget_used(study)
    if remaining > 0:
        study.optimize(
            objective,
            # Resumed, the study needs only the rest; MaxTrialsCallback stops this
            # worker once all workers together have opened n_trials.
            n_trials=remaining,
            timeout=tuning.timeout_seconds,
            callbacks=[MaxTrialsCallback(tuning.n_trials, states=USED_STATES)],
            catch=(_BudgetSpent,),
        )
    result = summarize(study, kind)
    logger.info(
        "tuning study=%s worker=%d trials=%d complete=%d pruned=%d failed=%d best_val_auc=%s seconds=%.1f",
        study_name, worker, result.n_trials, result.n_complete, result.n_pruned, result.n_failed,
        "n/a" if result.best_value is None else f"{result.best_value:.4f}", time.perf_counter() - started,
    )  # fmt: skip
    return result
