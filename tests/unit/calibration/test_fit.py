"""The calibration map: fitted with scikit-learn on rows the model did not train on, refused on a window too small."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from domainflow.calibration.fit import CalibratedPredictor, fit_calibration
from domainflow.config import CalibrationConfig
from domainflow.evaluation.metrics import binary_metrics, expected_calibration_error


def overconfident(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from p = expit(z) and scores expit(2z + 1): too sure and biased, as a model trained elsewhere."""
    z = np.random.default_rng(seed).normal(size=rows)
    labels = (np.random.default_rng(seed + 1).random(rows) < expit(z)).astype(int)
    return labels, expit(2 * z + 1)


def test_the_map_fixes_miscalibrated_scores_on_rows_it_did_not_see():
    labels, scores = overconfident(4_000)
    calibration = fit_calibration(labels[:2_000], scores[:2_000], "validation", CalibrationConfig())
    later_labels, later = labels[2_000:], scores[2_000:]
    assert calibration.fitted and calibration.method in ("sigmoid", "temperature")
    assert expected_calibration_error(later_labels, calibration.apply(later)) < 0.03
    assert expected_calibration_error(later_labels, later) > 0.15
    # A monotone map keeps the ranking: the AUC is the same.
    assert binary_metrics(later_labels, calibration.apply(later))["auc"] == pytest.approx(
        binary_metrics(later_labels, later)["auc"], abs=1e-9
    )


def test_auto_chooses_by_cross_validated_log_loss_and_tries_isotonic_only_on_enough_rows():
    labels, scores = overconfident(6_000)
    few = fit_calibration(labels[:1_000], scores[:1_000], "w", CalibrationConfig())
    many = fit_calibration(labels, scores, "w", CalibrationConfig(isotonic_min_rows=5_000))
    assert set(few.tried) == {"sigmoid", "temperature"}
    assert set(many.tried) == {"sigmoid", "temperature", "isotonic"}
    assert many.method == min(many.tried, key=many.tried.get)
    # The data's truth is a shifted, scaled logit: Platt's two parameters fit it, a temperature alone cannot.
    assert few.tried["sigmoid"] < few.tried["temperature"]
    fixed = fit_calibration(labels, scores, "w", CalibrationConfig(method="isotonic"))
    assert fixed.method == "isotonic" and set(fixed.tried) == {"isotonic"}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (np.array([0, 1] * 100), "validation 2013-07-01 to 2013-08-01, 200 rows: 200 labelled rows (100 positive, "
                                 "100 negative); calibration.min_rows is 500"),
        (np.zeros(800, dtype=int), "800 labelled rows (0 positive, 800 negative): one class only"),
    ],
)  # fmt: skip
def test_a_window_too_small_or_of_one_class_is_named_with_its_counts(labels, expected):
    calibration = fit_calibration(labels, np.full(labels.size, 0.3), "validation 2013-07-01 to 2013-08-01, "
                                  f"{labels.size} rows", CalibrationConfig())  # fmt: skip
    assert not calibration.fitted and expected in calibration.problem
    # Unfitted, the scores pass through unchanged (and the gate fails the candidate, see test_gate).
    np.testing.assert_allclose(calibration.apply(np.array([0.3, 0.9])), [0.3, 0.9], rtol=1e-6)


def test_the_calibrated_predictor_wraps_any_predictor():
    labels, scores = overconfident(2_000)
    calibration = fit_calibration(labels, scores, "w", CalibrationConfig())

    class Fixed:
        def predict(self, features):
            return features

    wrapped = CalibratedPredictor(Fixed(), calibration.calibrator)
    np.testing.assert_allclose(wrapped.predict(scores[:10]), calibration.apply(scores[:10]))
    assert wrapped.predict(np.zeros(0)).shape == (0,)
