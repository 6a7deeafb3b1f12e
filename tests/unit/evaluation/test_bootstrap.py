from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from domainflow.evaluation.bootstrap import (
    _POISSON_TABLE,
    auc_from_counts,
    bootstrap_auc,
    bootstrap_mean,
    paired_auc_difference,
    resample_counts,
)
from domainflow.evaluation.comparison import delong_auc_variance


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(11)
    labels = rng.random(4_000) < 0.3
    scores = rng.normal(size=labels.size) + 0.9 * labels
    return labels, scores


@pytest.mark.parametrize("decimals", [None, 1])  # 1 decimal place: thousands of ties
def test_auc_with_unit_counts_is_sklearns(scored, decimals):
    labels, scores = scored
    scores = scores if decimals is None else np.round(scores, decimals)
    ones = np.ones((1, labels.size))
    assert auc_from_counts(labels, scores, ones)[0] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_each_resample_is_a_weighted_auc(scored):
    labels, scores = scored
    scores = np.round(scores, 1)
    counts = next(resample_counts(labels.size, 3, seed=4))
    for row in counts:
        expected = roc_auc_score(labels, scores, sample_weight=row)
        assert auc_from_counts(labels, scores, row[None])[0] == pytest.approx(expected, abs=1e-12)


def test_poisson_counts_have_mean_and_variance_one():
    counts = np.concatenate(list(resample_counts(50_000, 40, seed=1)))
    assert counts.shape == (40, 50_000)
    assert counts.mean() == pytest.approx(1.0, abs=0.005) and counts.var() == pytest.approx(1.0, abs=0.01)
    assert np.bincount(_POISSON_TABLE)[0] / _POISSON_TABLE.size == pytest.approx(np.exp(-1), abs=1e-4)


def test_auc_interval_width_matches_delongs_standard_error(scored):
    labels, scores = scored
    interval = bootstrap_auc(labels, scores, resamples=2_000, seed=3)
    delong_width = 2 * 1.959964 * np.sqrt(delong_auc_variance(labels, scores))
    assert interval.low < interval.estimate < interval.high
    assert (interval.high - interval.low) == pytest.approx(delong_width, rel=0.1)
    assert interval.resamples == 2_000


def test_intervals_are_reproducible_by_seed(scored):
    labels, scores = scored
    assert bootstrap_auc(labels, scores, resamples=200, seed=5) == bootstrap_auc(labels, scores, resamples=200, seed=5)
    assert bootstrap_auc(labels, scores, resamples=200, seed=5) != bootstrap_auc(labels, scores, resamples=200, seed=6)


def test_paired_difference_of_a_model_with_itself_is_zero(scored):
    labels, scores = scored
    interval = paired_auc_difference(labels, scores, scores, resamples=200)
    assert interval.estimate == interval.low == interval.high == 0.0


def test_paired_difference_detects_a_worse_model_and_is_tighter_than_unpaired(scored):
    labels, scores = scored
    rng = np.random.default_rng(8)
    worse = scores + rng.normal(scale=1.0, size=scores.size)
    paired = paired_auc_difference(labels, scores, worse, resamples=1_000)
    assert paired.high < 0
    assert paired.estimate == pytest.approx(roc_auc_score(labels, worse) - roc_auc_score(labels, scores))
    separate = [bootstrap_auc(labels, s, resamples=1_000, seed=s_) for s, s_ in ((scores, 1), (worse, 2))]
    unpaired_width = np.hypot(*[(i.high - i.low) for i in separate])
    assert paired.high - paired.low < unpaired_width


def test_mean_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(2)
    losses = rng.exponential(0.5, size=20_000)
    interval = bootstrap_mean(losses, resamples=1_000)
    half_width = 1.959964 * losses.std(ddof=1) / np.sqrt(losses.size)
    assert interval.estimate == pytest.approx(losses.mean())
    assert (interval.high - interval.low) / 2 == pytest.approx(half_width, rel=0.1)


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        (np.ones(10), np.arange(10.0), "one class"),
        (np.array([0, 1, 2]), np.arange(3.0), "0 or 1"),
        (np.array([0, 1, 1]), np.arange(4.0), "shape"),
    ],
)
def test_bad_inputs_are_named(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_auc(labels, scores, resamples=10)


def test_confidence_outside_zero_one_is_refused(scored):
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_auc(*scored, resamples=10, confidence=95)
