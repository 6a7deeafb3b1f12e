"""A run's candidates on one split: the tuned network, its served variant, and the baseline.

Each function adapts the split and fitted feature pipeline to one library
stage (tuning, training, optimization, scoring, gating), so the tasks stay
one call each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from domainflow.config import BaselineConfig, OptimizationConfig, PipelineConfig, TrainingConfig, TuningConfig
from domainflow.data.features import FeaturePipeline
from domainflow.data.split import TimeSplit
from domainflow.data.validation import LABEL_COLUMN
from domainflow.evaluation.candidate import CandidateEvaluation, choose_reference, evaluate_candidate
from domainflow.evaluation.metrics import binary_metrics
from domainflow.models.baseline import baseline_proba, train_baseline
from domainflow.optimization.optimize import optimize_network
from domainflow.optimization.predictors import Predictor, load_predictor
from domainflow.optimization.report import OptimizationResult
from domainflow.registry.champion import score_champion
from domainflow.training.trainer import TrainedNetwork, train_network
from domainflow.tuning.search import apply_best_params, tune_network
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


def _labels(split: TimeSplit, name: str) -> np.ndarray:
    return getattr(split, name)[LABEL_COLUMN].to_numpy()


def tune_hyperparameters(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    training: TrainingConfig,
    tuning: TuningConfig,
    study_name: str,
    work_root: Path | None = None,
    worker: int = 0,
) -> TuningResult:
    return tune_network(
        pipeline.transform(split.train), _labels(split, "train"),
        pipeline.transform(split.validation), _labels(split, "validation"),
        numeric_width=pipeline.numeric_width, cardinalities=pipeline.cardinalities,
        training=training, tuning=tuning, study_name=study_name, work_root=work_root, worker=worker,
    )  # fmt: skip


def fit_network(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    config: TrainingConfig,
    work_root: Path | None = None,
    tuning: TuningResult | None = None,
) -> TrainedNetwork:
    """The final training, with the study's best parameters over `config` when there is a study."""
    return train_network(
        pipeline.transform(split.train),
        _labels(split, "train"),
        pipeline.transform(split.validation),
        _labels(split, "validation"),
        numeric_width=pipeline.numeric_width,
        cardinalities=pipeline.cardinalities,
        config=apply_best_params(config, tuning) if tuning is not None else config,
        work_root=work_root,
    )


def fit_baseline(
    pipeline: FeaturePipeline, split: TimeSplit, config: BaselineConfig, seed: int = 0
) -> HistGradientBoostingClassifier:
    return train_baseline(pipeline.transform(split.train), _labels(split, "train"), config, seed)


def optimize_for_serving(
    pipeline: FeaturePipeline, split: TimeSplit, network: TrainedNetwork, config: OptimizationConfig
) -> OptimizationResult:
    """Variants calibrated on training rows, judged on validation rows; the test rows stay for the gates."""
    return optimize_network(
        network,
        pipeline.transform(split.train),
        pipeline.transform(split.validation),
        _labels(split, "validation"),
        config,
    )


def served_predictor(optimized: OptimizationResult) -> Predictor:
    return load_predictor(optimized.artifacts[optimized.chosen], optimized.formats[optimized.chosen])


def score_candidates(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    optimized: OptimizationResult,
    baseline: HistGradientBoostingClassifier,
) -> CandidateScores:
    served = served_predictor(optimized)
    scores: dict[str, dict[str, dict[str, float]]] = {"network": {}, "baseline": {}}
    for name in SCORED_SPLITS:
        features, labels = pipeline.transform(getattr(split, name)), _labels(split, name)
        scores["network"][name] = binary_metrics(labels, served.predict(features))
        scores["baseline"][name] = binary_metrics(labels, baseline_proba(baseline, features))
    return CandidateScores(**scores)


def gate_candidate(
    tracking_uri: str,
    model_name: str,
    pipeline: FeaturePipeline,
    split: TimeSplit,
    optimized: OptimizationResult,
    baseline: HistGradientBoostingClassifier,
    scores: CandidateScores,
    config: PipelineConfig,
    report_path: Path | None = None,
) -> CandidateEvaluation:
    """The served variant on the test rows, against the champion in the registry (else the baseline).

    `scores` are score_candidates' figures for the same variant; its validation AUC is taken from them.
    """
    served = served_predictor(optimized)
    test, labels = split.test, _labels(split, "test")
    features = pipeline.transform(test)
    champion = score_champion(tracking_uri, model_name, test)
    reference = choose_reference(
        champion.version if champion else None,
        champion.scores if champion else None,
        baseline_proba(baseline, features),
    )
    validation_auc = scores.network["validation"]["auc"]
    return evaluate_candidate(test, labels, served.predict(features), validation_auc, reference, config, report_path)
