"""The trained candidates of a run, scored: the network as it will be served, and the baseline beside it."""

from __future__ import annotations

from dataclasses import dataclass

from sklearn.ensemble import HistGradientBoostingClassifier

from domainflow.data.features import FeaturePipeline
from domainflow.data.split import TimeSplit
from domainflow.evaluation.metrics import binary_metrics
from domainflow.models.baseline import baseline_proba
from domainflow.models.lightning import TrainedNetwork
from domainflow.models.predictors import Predictor, load_predictor
from domainflow.optimization.report import OptimizationResult
from domainflow.tuning.study import TuningResult

SCORED_SPLITS = ("validation", "test")


@dataclass(frozen=True)
class CandidateScores:
    """Metrics per candidate and split: scores.network["test"]["auc"] (the served variant's)."""

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


@dataclass(frozen=True)
class TrainedCandidate:
    """What the training stages made of one domain's data, and how it scored: what the gates and MLflow take."""

    pipeline: FeaturePipeline
    tuning: TuningResult
    network: TrainedNetwork
    optimized: OptimizationResult  # the variants; `optimized.chosen` serves
    baseline: HistGradientBoostingClassifier
    scores: CandidateScores

    def served_predictor(self) -> Predictor:
        return served_predictor(self.optimized)


def served_predictor(optimized: OptimizationResult) -> Predictor:
    return load_predictor(optimized.artifacts[optimized.chosen], optimized.formats[optimized.chosen])


def score_candidates(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    tuning: TuningResult,
    network: TrainedNetwork,
    optimized: OptimizationResult,
    baseline: HistGradientBoostingClassifier,
) -> TrainedCandidate:
    """The served variant and the baseline on the validation and test rows, with everything that made them."""
    served = served_predictor(optimized)
    scores: dict[str, dict[str, dict[str, float]]] = {"network": {}, "baseline": {}}
    for name in SCORED_SPLITS:
        features, labels = pipeline.transform(getattr(split, name)), split.labels(name)
        scores["network"][name] = binary_metrics(labels, served.predict(features))
        scores["baseline"][name] = binary_metrics(labels, baseline_proba(baseline, features))
    return TrainedCandidate(pipeline=pipeline, tuning=tuning, network=network, optimized=optimized,
                            baseline=baseline, scores=CandidateScores(**scores))  # fmt: skip
