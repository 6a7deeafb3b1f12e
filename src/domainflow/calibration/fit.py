"""Fitting a family's calibration map with scikit-learn's calibration tools, and applying it.

Why scikit-learn rather than a temperature in torch: every family (the network's served
variant, FP32, INT8 or ONNX, and gradient boosting) is calibrated the same way, on the scores
it serves, so one map works whatever produced the scores. `CalibratedClassifierCV` takes a
fitted classifier wrapped in `FrozenEstimator`; `ScoreColumn` is that classifier for a column
of scores already computed, its `decision_function` the logit, so Platt scaling (`sigmoid`) and
temperature scaling work on logits as their authors define them.

`auto` chooses among the methods by cross-validated log loss on the calibration rows (a
proper scoring rule; the chosen map is then refitted on all of them). Isotonic regression
joins the choice only from `isotonic_min_rows` rows, where it stops overfitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import KFold, cross_val_score

from domainflow.config import CalibrationConfig
from domainflow.evaluation.metrics import binary_metrics

# Scores are clipped this far from 0 and 1 before their logit is taken.
EPSILON = 1e-7


class ScoreColumn(ClassifierMixin, BaseEstimator):
    """A 'classifier' whose input is one column of scores already computed: what CalibratedClassifierCV calibrates.

    Pickled inside every registered calibration map: keep its import path.
    """

    def fit(self, X, y=None):  # noqa: N803 (scikit-learn's names)
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X):  # noqa: N803
        return logit(np.clip(_column(X), EPSILON, 1 - EPSILON))

    def predict_proba(self, X):  # noqa: N803
        scores = _column(X)
        return np.column_stack([1 - scores, scores])

    def predict(self, X):  # noqa: N803
        return (_column(X) >= 0.5).astype(np.int64)


def _column(X) -> np.ndarray:  # noqa: N803
    return np.asarray(X, dtype=np.float64).reshape(len(X), -1)[:, 0]


@dataclass(frozen=True)
class CalibrationWindow:
    """The labelled rows a map is fitted on, named for the verdict: "validation 2013-07-01 to 2013-08-01"."""

    label: str
    rows: int
    positives: int

    @property
    def negatives(self) -> int:
        return self.rows - self.positives

    def describe(self) -> str:
        return f"{self.label}: {self.rows} labelled rows ({self.positives} positive, {self.negatives} negative)"


@dataclass(frozen=True)
class Calibration:
    """A fitted map (None when the window could not fit one, with `problem` saying why) and how it did."""

    window: CalibrationWindow
    calibrator: CalibratedClassifierCV | None
    method: str | None
    problem: str | None
    # Log loss of each method tried, cross-validated on the window (what `auto` chose by).
    tried: dict[str, float]
    # ECE and log loss on the calibration window, before and after the map.
    before: dict[str, float]
    after: dict[str, float]

    @property
    def fitted(self) -> bool:
        return self.calibrator is not None

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities; the scores as they are when no map was fitted (the gate fails that candidate)."""
        return apply_calibration(self.calibrator, scores)

    def to_dict(self) -> dict:
        return {
            "window": self.window.label, "rows": self.window.rows, "positives": self.window.positives,
            "method": self.method, "problem": self.problem, "cross_validated_log_loss": self.tried,
            "before": self.before, "after": self.after,
        }  # fmt: skip


def apply_calibration(calibrator: CalibratedClassifierCV | None, scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if calibrator is None or scores.size == 0:
        return scores.astype(np.float32)
    return calibrator.predict_proba(scores.reshape(-1, 1))[:, 1].astype(np.float32)


def window_problem(window: CalibrationWindow, config: CalibrationConfig) -> str | None:
    """Why `window` cannot fit a map, or None."""
    if window.rows < config.min_rows:
        return f"{window.describe()}; calibration.min_rows is {config.min_rows}"
    if window.positives == 0 or window.negatives == 0:
        return f"{window.describe()}: one class only, nothing to calibrate against"
    if min(window.positives, window.negatives) < config.folds:
        return f"{window.describe()}: fewer rows of one class than calibration.folds ({config.folds})"
    return None


def _calibrator(method: str) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(FrozenEstimator(ScoreColumn().fit(None)), method=method)


def _methods(window: CalibrationWindow, config: CalibrationConfig) -> list[str]:
    if config.method != "auto":
        return [config.method]
    return ["sigmoid", "temperature", *(["isotonic"] if window.rows >= config.isotonic_min_rows else [])]


def fit_calibration(
    labels: np.ndarray, scores: np.ndarray, window_label: str, config: CalibrationConfig
) -> Calibration:
    """The map for `scores` (a family's uncalibrated scores on the window's rows), chosen and fitted on them."""
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    window = CalibrationWindow(window_label, int(labels.size), int(labels.sum()))
    problem = window_problem(window, config)
    if problem is not None:
        return Calibration(window, None, None, problem, {}, {}, {})
    column = scores.reshape(-1, 1)
    # Contiguous folds: the window's rows are in time order, and a map is used on later rows.
    folds = KFold(n_splits=config.folds)
    tried = {
        method: -float(cross_val_score(_calibrator(method), column, labels, scoring="neg_log_loss", cv=folds).mean())
        for method in _methods(window, config)
    }
    method = min(tried, key=tried.get)
    calibrator = _calibrator(method).fit(column, labels)
    before, after = binary_metrics(labels, scores), binary_metrics(labels, apply_calibration(calibrator, scores))
    keep = ("ece", "log_loss", "auc")
    return Calibration(window, calibrator, method, None, tried, {k: before[k] for k in keep},
                       {k: after[k] for k in keep})  # fmt: skip


class CalibratedPredictor:
    """A predictor whose scores go through a calibration map: what every served variant is wrapped in."""

    def __init__(self, predictor, calibrator: CalibratedClassifierCV | None):
        self.predictor, self.calibrator = predictor, calibrator

    def predict(self, features) -> np.ndarray:
        return apply_calibration(self.calibrator, self.predictor.predict(features))
