"""build_report: Evidently's drift and quality tests on a scored window, and the HTML a person reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from domainflow.monitoring.reports import build_report

NUMERIC, CATEGORICAL = ["dep_hour", "distance"], ["carrier"]


def scored(rows: int, seed: int, *, shuffle_scores: bool = False, labelled: float = 0.7) -> pd.DataFrame:
    """Features, a model's score that ranks the label well, and labels known for a share of the rows."""
    rng = np.random.default_rng(seed)
    dep_hour = rng.uniform(5, 23, rows)
    carrier = rng.choice(["AA", "DL", "EV"], rows)
    logit = 0.5 * (dep_hour - 14) + np.where(carrier == "EV", 1.5, 0.0)
    score = 1 / (1 + np.exp(-logit))
    label = (rng.random(rows) < score).astype(float)
    label[rng.random(rows) > labelled] = np.nan  # feedback not in yet
    if shuffle_scores:
        score = rng.permutation(score)
    return pd.DataFrame({"dep_hour": dep_hour, "distance": rng.gamma(4, 250, rows), "carrier": carrier,
                         "score": score, "label": label})  # fmt: skip


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return scored(3_000, seed=0)


def test_a_window_scored_like_the_reference_passes(reference):
    window = scored(2_000, seed=1)
    report = build_report(reference, window, NUMERIC, CATEGORICAL)

    quality = report.quality
    assert quality is not None and quality.passed
    assert quality.rows == int(window["label"].notna().sum())  # unlabelled rows count for drift only
    assert report.drift.current_rows == len(window)
    labelled = reference.dropna(subset=["label"])
    assert quality.reference_auc == pytest.approx(roc_auc_score(labelled["label"], labelled["score"]))
    assert [t["status"] for t in quality.tests] == ["SUCCESS", "SUCCESS"]
    assert report.drift.drifted_columns() == [] and not report.drift.dataset_drift
    assert report.prediction_drift.column == "score" and not report.prediction_drift.drifted
    assert report.html.lstrip().startswith("<!DOCTYPE html>") and len(report.html) > 10_000
    assert "distance" in report.html and "RocAuc" in report.html


def test_scores_shuffled_against_the_labels_fail_both_tests(reference):
    report = build_report(reference, scored(2_000, seed=2, shuffle_scores=True), NUMERIC, CATEGORICAL)

    quality = report.quality
    assert quality is not None and not quality.passed
    assert quality.auc < 0.6 < quality.reference_auc - 0.05
    failed = [t["name"] for t in quality.tests if t["status"] == "FAIL"]
    assert len(failed) == 2
    assert any("RocAuc" in name and "Greater or Equal" in name for name in failed)
    assert any("LogLoss" in name and "Less or Equal" in name for name in failed)
    # The score distribution is unchanged by the shuffle: no prediction drift, only worse quality.
    assert not report.prediction_drift.drifted


def test_too_few_labels_leave_quality_unjudged_but_drift_is_reported(reference):
    window = scored(1_500, seed=3, labelled=0.05)
    report = build_report(reference, window, NUMERIC, CATEGORICAL, min_labelled=200)
    assert report.quality is None
    assert [c.column for c in report.drift.columns] == NUMERIC + CATEGORICAL
    assert "dep_hour" in report.html


def test_quality_is_measured_against_the_quality_reference_when_given(reference):
    test_month = scored(1_000, seed=4).assign(score=lambda f: f["label"].fillna(0.5).clip(0.01, 0.99))
    report = build_report(reference, scored(2_000, seed=1), NUMERIC, CATEGORICAL, quality_reference=test_month)
    assert report.quality.reference_auc == pytest.approx(1.0)
    assert not report.quality.passed  # a good window still falls short of a perfect test month


def test_a_missing_score_or_label_column_is_named(reference):
    with pytest.raises(ValueError, match="'score'.*missing from the current"):
        build_report(reference, scored(500, seed=5).drop(columns="score"), NUMERIC, CATEGORICAL)
    with pytest.raises(ValueError, match="'label'.*missing from the current"):
        build_report(reference, scored(500, seed=5).drop(columns="label"), NUMERIC, CATEGORICAL)
