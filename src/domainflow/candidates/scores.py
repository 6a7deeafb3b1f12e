"""A run's candidates: every model family trained for the domain, as it would serve, calibrated and scored.

The families today are the network (its served variant, chosen by optimization's measurements)
and gradient boosting (one variant: the fitted scikit-learn model; no quantized or ONNX form of
it is built, so there is nothing to measure between). Each is calibrated on the validation
rows, which it did not train on, and scored, calibrated, on the validation and test rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sklearn.ensemble import HistGradientBoostingClassifier

from domainflow.calibration.fit import CalibratedPredictor, Calibration, fit_calibration
from domainflow.config import CalibrationConfig
from domainflow.data.features import FeaturePipeline
from domainflow.data.split import TimeSplit
from domainflow.evaluation.metrics import binary_metrics
from domainflow.models.baseline import serialize_gradient_boosting
from domainflow.models.lightning import TrainedNetwork
from domainflow.models.predictors import SKLEARN_FORMAT, Predictor, load_predictor
from domainflow.optimization.report import OptimizationResult
from domainflow.tuning.study import TuningResult

SCORED_SPLITS = ("validation", "test")
NETWORK, GRADIENT_BOOSTING = "network", "gradient_boosting"
# The part of the split every family is calibrated on: labelled rows no family trained on.
CALIBRATION_SPLIT = "validation"


@dataclass(frozen=True)
class FamilyModel:
    """One family's model as it would be served, before calibration: the variant's file and why it serves."""

    family: str
    variant: str  # "fp32", "int8", "onnx" for the network; "sklearn" for gradient boosting
    format: str  # domainflow.models.predictors: "torch", "onnx", "sklearn"
    payload: bytes
    reason: str

    def predictor(self) -> Predictor:
        return load_predictor(self.payload, self.format)


@dataclass(frozen=True)
class CalibratedFamily:
    model: FamilyModel
    calibration: Calibration

    @property
    def family(self) -> str:
        return self.model.family

    def predictor(self) -> CalibratedPredictor:
        return CalibratedPredictor(self.model.predictor(), self.calibration.calibrator)


def family_models(optimized: OptimizationResult, baseline: HistGradientBoostingClassifier) -> tuple[FamilyModel, ...]:
    network = FamilyModel(NETWORK, optimized.chosen, optimized.formats[optimized.chosen],
                          optimized.artifacts[optimized.chosen], optimized.reason)  # fmt: skip
    return network, boosting_model(baseline)


def boosting_model(baseline: HistGradientBoostingClassifier) -> FamilyModel:
    return FamilyModel(GRADIENT_BOOSTING, SKLEARN_FORMAT, SKLEARN_FORMAT, serialize_gradient_boosting(baseline),
                       "one variant: the fitted scikit-learn model")  # fmt: skip


def calibrate_families(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    optimized: OptimizationResult,
    baseline: HistGradientBoostingClassifier,
    config: CalibrationConfig,
) -> tuple[CalibratedFamily, ...]:
    """Each family's map, fitted on its own served scores of the calibration rows (a map per family)."""
    features, labels = pipeline.transform(getattr(split, CALIBRATION_SPLIT)), split.labels(CALIBRATION_SPLIT)
    window = split.window(CALIBRATION_SPLIT)
    return tuple(
        CalibratedFamily(model, fit_calibration(labels, model.predictor().predict(features), window, config))
        for model in family_models(optimized, baseline)
    )


@dataclass(frozen=True)
class CandidateScores:
    """Calibrated metrics per family and split: scores.by_family["network"]["test"]["auc"]."""

    by_family: dict[str, dict[str, dict[str, float]]]

    @property
    def network(self) -> dict[str, dict[str, float]]:
        return self.by_family[NETWORK]

    @property
    def gradient_boosting(self) -> dict[str, dict[str, float]]:
        return self.by_family[GRADIENT_BOOSTING]

    def flat(self) -> dict[str, float]:
        """`network_test_auc`-style names, as logged to MLflow."""
        return {
            f"{family}_{split}_{metric}": value
            for family, by_split in self.by_family.items()
            for split, metrics in by_split.items()
            for metric, value in metrics.items()
        }


@dataclass(frozen=True)
class TrainedCandidate:
    """What the training stages made of one domain's data, and how it scored: what the gates and MLflow take."""

    pipeline: FeaturePipeline
    tuning: TuningResult
    network: TrainedNetwork
    optimized: OptimizationResult  # the network's variants; `optimized.chosen` is the one it serves
    families: tuple[CalibratedFamily, ...]
    scores: CandidateScores

    def family(self, name: str) -> CalibratedFamily:
        for family in self.families:
            if family.family == name:
                return family
        raise KeyError(f"no candidate family {name!r}; trained: {[f.family for f in self.families]}")


def score_candidates(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    tuning: TuningResult,
    network: TrainedNetwork,
    optimized: OptimizationResult,
    families: tuple[CalibratedFamily, ...],
) -> TrainedCandidate:
    """Every family as it would serve (calibrated) on the validation and test rows, with everything that made them."""
    predictors = {family.family: family.predictor() for family in families}
    scores: dict[str, dict[str, dict[str, float]]] = {name: {} for name in predictors}
    for part in SCORED_SPLITS:
        features, labels = pipeline.transform(getattr(split, part)), split.labels(part)
        for name, predictor in predictors.items():
            scores[name][part] = binary_metrics(labels, predictor.predict(features))
    return TrainedCandidate(pipeline=pipeline, tuning=tuning, network=network, optimized=optimized,
                            families=families, scores=CandidateScores(scores))  # fmt: skip
