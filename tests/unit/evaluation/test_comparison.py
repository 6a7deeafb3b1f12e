from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar

from domainflow.evaluation.bootstrap import bootstrap_auc
from domainflow.evaluation.comparison import delong_auc_variance, delong_test, mcnemar_test


def _synthetic(seed: int, rows: int = 3_000):
    rng = np.random.default_rng(seed)
    labels = rng.random(rows) < 0.3
    signal = 0.8 * labels
    return labels, signal + rng.normal(size=rows), signal + rng.normal(size=rows), rng


def test_delong_difference_is_the_auc_difference():
    labels, a, b, _ = _synthetic(1)
    result = delong_test(labels, a, b)
    assert result.difference == pytest.approx(roc_auc_score(labels, b) - roc_auc_score(labels, a))


def test_delong_variance_agrees_with_the_bootstrap():
    labels, a, _, _ = _synthetic(2)
    interval = bootstrap_auc(labels, a, resamples=2_000, seed=9)
    bootstrap_se = (interval.high - interval.low) / (2 * 1.959964)
    assert np.sqrt(delong_auc_variance(labels, a)) == pytest.approx(bootstrap_se, rel=0.1)


def test_delong_finds_a_clearly_worse_model_and_not_an_identical_one():
    labels, a, _, rng = _synthetic(3)
    worse = a + rng.normal(scale=2.0, size=a.size)
    assert delong_test(labels, a, worse).p_value < 1e-6
    assert delong_test(labels, a, a).p_value == 1.0


def test_delong_false_positive_rate_under_the_null_is_near_alpha():
    # Two independent models of equal quality: rejections at 5% should be ~5%.
    rejections = [delong_test(*_synthetic(seed, rows=600)[:3]).p_value < 0.05 for seed in range(300)]
    rate = np.mean(rejections)
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)


def test_mcnemar_matches_statsmodels_in_both_regimes():
    labels, a, b, rng = _synthetic(4, rows=2_000)
    predictions_a, predictions_b = a > 0.5, b > 0.5
    table = _table(labels, predictions_a, predictions_b)
    ours = mcnemar_test(labels, predictions_a, predictions_b)
    reference = mcnemar(table, exact=False, correction=True)
    assert ours.statistic == pytest.approx(reference.statistic) and ours.p_value == pytest.approx(reference.pvalue)

    small = slice(0, 40)  # few discordant rows: the exact binomial test
    table = _table(labels[small], predictions_a[small], predictions_b[small])
    ours = mcnemar_test(labels[small], predictions_a[small], predictions_b[small])
    assert ours.name == "mcnemar-exact"
    assert ours.p_value == pytest.approx(mcnemar(table, exact=True).pvalue)


def test_mcnemar_without_discordant_rows_sees_no_difference():
    labels = np.array([0, 1, 1, 0])
    assert mcnemar_test(labels, labels, labels).p_value == 1.0


def _table(labels, predictions_a, predictions_b):
    right_a, right_b = predictions_a == labels, predictions_b == labels
    return [
        [(right_a & right_b).sum(), (right_a & ~right_b).sum()],
        [(~right_a & right_b).sum(), (~right_a & ~right_b).sum()],
    ]
