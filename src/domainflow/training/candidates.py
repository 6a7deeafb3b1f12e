"""The two candidates of a run, the network and the baseline, fitted and scored on one split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sklearn.ensemble import HistGradientBoostingClassifier

from domainflow.config import BaselineConfig, TrainingConfig
from domainflow.data.features import FeaturePipeline
from domainflow.data.split import TimeSplit
from domainflow.data.validation import LABEL_COLUMN
from domainflow.evaluation.metrics import binary_metrics
from domainflow.models.baseline import baseline_proba, train_baseline
from domainflow.models.lightning import predict_proba
from domainflow.training.trainer import TrainedNetwork, train_network

SCORED_SPLITS = ("validation", "test")


@dataclass(frozen=True)
class CandidateScores:
    """Metrics per candidate and split: scores.network["test"]["auc"]."""

    network: dict[str, dict[str, float]]
    baseline: dict[str, dict[str, float]]

    def flat(self) -> dict[str, float]:
        """`network_test_auc`-style names, as logged to MLflow."""
        return {
            f"{candidate}_{split}_{metric}": value
            for candidate, by_split in (("network", self.network), ("baseline", self.baseline))
            for split, metrics in by_split.items()
            for metric, value in metrics.items()
        }


def fit_network(
    pipeline: FeaturePipeline, split: TimeSplit, config: TrainingConfig, work_root: Path | None = None
) -> TrainedNetwork:
    return train_network(
        pipeline.transform(split.train),
        split.train[LABEL_COLUMN].to_numpy(),
        pipeline.transform(split.validation),
        split.validation[LABEL_COLUMN].to_numpy(),
        numeric_width=pipeline.numeric_width,
        cardinalities=pipeline.cardinalities,
        config=config,
        work_root=work_root,
    )


def fit_baseline(
    pipeline: FeaturePipeline, split: TimeSplit, config: BaselineConfig, seed: int = 0
) -> HistGradientBoostingClassifier:
    return train_baseline(pipeline.transform(split.train), split.train[LABEL_COLUMN].to_numpy(), config, seed)


def score_candidates(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    network: TrainedNetwork,
    baseline: HistGradientBoostingClassifier,
) -> CandidateScores:
    net = network.build()
    scores: dict[str, dict[str, dict[str, float]]] = {"network": {}, "baseline": {}}
    for name in SCORED_SPLITS:
        part = getattr(split, name)
        features, labels = pipeline.transform(part), part[LABEL_COLUMN].to_numpy()
        scores["network"][name] = binary_metrics(labels, predict_proba(net, features))
        scores["baseline"][name] = binary_metrics(labels, baseline_proba(baseline, features))
    return CandidateScores(**scores)
