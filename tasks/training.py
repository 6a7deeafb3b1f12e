"""Training tasks: the network, the baseline, and their scores. Training is cached like the data stages."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger
from sklearn.ensemble import HistGradientBoostingClassifier

from domainflow.config import BaselineConfig, TrainingConfig
from domainflow.data.features import FeaturePipeline
from domainflow.data.split import TimeSplit
from domainflow.training import candidates
from domainflow.training.trainer import TrainedNetwork

from .policies import CACHED_STAGE


@task(cache_policy=CACHED_STAGE, timeout_seconds=6 * 3600)
def train_network(
    pipeline: FeaturePipeline, split: TimeSplit, config: TrainingConfig, work_root: str
) -> TrainedNetwork:
    network = candidates.fit_network(pipeline, split, config, work_root=Path(work_root))
    get_run_logger().info(
        "network epochs=%d best_val_auc=%.4f strategy=%s devices=%d nodes=%d",
        network.epochs_run, network.best_val_auc, config.strategy, config.devices, config.num_nodes,
    )  # fmt: skip
    return network


@task(cache_policy=CACHED_STAGE)
def train_baseline(
    pipeline: FeaturePipeline, split: TimeSplit, config: BaselineConfig, seed: int
) -> HistGradientBoostingClassifier:
    baseline = candidates.fit_baseline(pipeline, split, config, seed)
    get_run_logger().info("baseline iterations=%d of max_iter=%d", baseline.n_iter_, config.max_iter)
    return baseline


@task
def score_candidates(
    pipeline: FeaturePipeline, split: TimeSplit, network: TrainedNetwork, baseline: HistGradientBoostingClassifier
) -> candidates.CandidateScores:
    scores = candidates.score_candidates(pipeline, split, network, baseline)
    get_run_logger().info(
        "scores network_val_auc=%.4f baseline_val_auc=%.4f network_test_auc=%.4f baseline_test_auc=%.4f",
        scores.network["validation"]["auc"], scores.baseline["validation"]["auc"],
        scores.network["test"]["auc"], scores.baseline["test"]["auc"],
    )  # fmt: skip
    return scores
