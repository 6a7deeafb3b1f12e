from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from domainflow.evaluation.metrics import binary_metrics, expected_calibration_error, slice_auc_drops, slice_metrics


def test_a_calibrated_model_has_near_zero_ece_and_a_shifted_one_does_not():
    rng = np.random.default_rng(0)
    scores = rng.random(50_000)
    labels = rng.random(scores.size) < scores  # calibrated by construction
    assert expected_calibration_error(labels, scores) < 0.01
    assert expected_calibration_error(labels, np.clip(scores + 0.2, 0, 1)) == pytest.approx(0.18, abs=0.02)


def test_binary_metrics_agree_with_sklearn():
    labels = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.1, 0.6, 0.7, 0.4, 0.9, 0.2])
    metrics = binary_metrics(labels, scores)
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert metrics["f1"] == pytest.approx(f1_score(labels, scores >= 0.5))
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert set(metrics) == {"auc", "log_loss", "brier", "accuracy", "f1", "ece"}


def test_slices_are_scored_separately_and_small_ones_are_listed_without_metrics():
    rng = np.random.default_rng(1)
    carriers = pd.Series(["AA"] * 1_000 + ["DL"] * 1_000 + ["ZZ"] * 50)
    labels = rng.random(carriers.size) < 0.3
    scores = np.where(carriers == "AA", labels * 0.6 + rng.random(carriers.size) * 0.4, rng.random(carriers.size))
    table = slice_metrics(carriers, labels, scores).set_index("slice")
    assert table.loc["AA", "auc"] > 0.95 and table.loc["DL", "auc"] == pytest.approx(0.5, abs=0.06)
    assert table.loc["ZZ", "rows"] == 50 and np.isnan(table.loc["ZZ", "auc"])


def test_slice_auc_drops_point_at_the_slice_where_a_model_lost_its_signal():
    rng = np.random.default_rng(2)
    carriers = pd.Series(["AA"] * 1_000 + ["EV"] * 1_000 + ["ZZ"] * 50)
    labels = rng.random(carriers.size) < 0.3
    reference = labels * 0.5 + rng.random(carriers.size) * 0.5
    scores = np.where(carriers == "EV", rng.random(carriers.size), reference)
    table = slice_auc_drops(carriers, labels, scores, reference).set_index("slice")
    assert table.loc["AA", "drop"] == 0.0 and table.loc["AA", "delong_p_value"] == 1.0
    assert table.loc["EV", "drop"] == pytest.approx(table.loc["EV", "reference_auc"] - 0.5, abs=0.05)
    assert table.loc["EV", "delong_p_value"] < 1e-6
    assert table.loc["ZZ", "rows"] == 50 and np.isnan(table.loc["ZZ", "drop"])
