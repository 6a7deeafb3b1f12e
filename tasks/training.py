"""Training tasks: tune, train the network and the baseline, build the serving variants. Cached like the data stages.

A training's start and end are audited by tasks cached on the training itself, so a rerun that trains
nothing writes no rows.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger
from prefect.task_runners import ProcessPoolTaskRunner
from sklearn.ensemble import HistGradientBoostingClassifier

from domainflow import tracking
from domainflow.candidates.scores import TrainedCandidate
from domainflow.config import (
    BaselineConfig,
    OptimizationConfig,
    PipelineConfig,
    ScaleConfig,
    TrainingConfig,
    TuningConfig,
)
from domainflow.data.features import FeaturePipeline
from domainflow.data.prepared import DomainData
from domainflow.data.split import TimeSplit
from domainflow.models import baseline as baselines
from domainflow.models.lightning import TrainedNetwork
from domainflow.optimization import optimize
from domainflow.optimization.report import OptimizationResult
from domainflow.settings import Settings
from domainflow.store.audit import AuditTrail
from domainflow.store.database import open_database
from domainflow.training import trainer, workers
from domainflow.training.params import Params
from domainflow.tuning import search, study
from domainflow.tuning.study import TuningResult

from .policies import AUDITED_TRAINING, CACHED_STAGE, RETRY_IO, flow_run_actor

SIX_HOURS = 6 * 3600


def _trail(settings: Settings, domain: str) -> AuditTrail:
    return AuditTrail(open_database(settings.database_url), domain, flow_run_actor())


@task(cache_policy=AUDITED_TRAINING, **RETRY_IO)
def record_training_started(settings: Settings, data: DomainData, config: PipelineConfig) -> None:
    """Retried: it writes the state database."""
    tracking.record_training_started(_trail(settings, data.domain), data, config)


@task(cache_policy=AUDITED_TRAINING, **RETRY_IO)
def record_training_ended(
    settings: Settings, data: DomainData, config: PipelineConfig, candidate: TrainedCandidate
) -> None:
    """Retried: it writes the state database."""
    tracking.record_training_ended(_trail(settings, data.domain), data, config, candidate)


@task(cache_policy=CACHED_STAGE, timeout_seconds=SIX_HOURS)
def tune_hyperparameters(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    training: TrainingConfig,
    tuning: TuningConfig,
    study_name: str,
    work_root: str,
    worker: int = 0,
) -> TuningResult:
    """One worker's share of the study; several task runs share a database-backed study."""
    result = search.tune_hyperparameters(pipeline, split, training, tuning, study_name, Path(work_root), worker)
    get_run_logger().info(
        "tuning study=%s worker=%d trials=%d complete=%d pruned=%d best_val_auc=%s best=%s",
        study_name, worker, result.n_trials, result.n_complete, result.n_pruned,
        "n/a" if result.best_value is None else f"{result.best_value:.4f}", result.best_params,
    )  # fmt: skip
    return result


@task(cache_policy=CACHED_STAGE)
def summarize_tuning(worker_results: list[TuningResult], tuning: TuningConfig) -> TuningResult:
    """The whole study once every worker finished: read back from the storage the workers shared."""
    return study.summarize_tuning(worker_results, tuning)


@task(cache_policy=CACHED_STAGE, timeout_seconds=SIX_HOURS)
def train_network(
    pipeline: FeaturePipeline, split: TimeSplit, config: TrainingConfig, best_params: Params, work_root: str
) -> TrainedNetwork:
    network = trainer.train_network(pipeline, split, config, best_params, Path(work_root))
    get_run_logger().info(
        "network epochs=%d best_val_auc=%.4f strategy=%s devices=%d nodes=%d tuned=%s",
        network.epochs_run, network.best_val_auc, config.strategy, config.devices, config.num_nodes,
        bool(best_params),
    )  # fmt: skip
    return network


@task(cache_policy=CACHED_STAGE)
def train_baseline(
    pipeline: FeaturePipeline, split: TimeSplit, config: BaselineConfig, seed: int
) -> HistGradientBoostingClassifier:
    baseline = baselines.train_baseline(pipeline, split, config, seed)
    get_run_logger().info("baseline iterations=%d of max_iter=%d", baseline.n_iter_, config.max_iter)
    return baseline


@task(cache_policy=CACHED_STAGE)
def optimize_for_serving(
    pipeline: FeaturePipeline, split: TimeSplit, network: TrainedNetwork, config: OptimizationConfig
) -> OptimizationResult:
    """FP32, INT8 and ONNX variants measured side by side; the fastest within the AUC budget serves."""
    result = optimize.optimize_for_serving(pipeline, split, network, config)
    chosen = result.chosen_report
    get_run_logger().info(
        "optimization chosen=%s size_bytes=%d auc_drop=%.4f %s (%s)",
        result.chosen, chosen.size_bytes, chosen.auc_drop,
        " ".join(f"{k}={v:.2f}" for k, v in result.ratios().items()), result.reason,
    )  # fmt: skip
    return result


def domain_worker_pool(scale: ScaleConfig, domains: int) -> ProcessPoolTaskRunner:
    """Prefect's process pool for `scale.domain_workers` domains at once, each worker with its share of the cores."""
    count = min(scale.domain_workers, domains)
    threads = workers.threads_per_worker(scale, count)
    return ProcessPoolTaskRunner(max_workers=count, initializer=workers.start_worker, initargs=(threads,))
