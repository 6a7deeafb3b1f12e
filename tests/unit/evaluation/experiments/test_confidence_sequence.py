"""The mSPRT's confidence sequence: coverage under peeking by seeded simulation, shape, and argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from domainflow.evaluation.experiments import SequentialDecision, SequentialTest, always_valid_interval

STREAMS, LOOKS, BATCH = 500, 50, 200  # BATCH observations per arm between looks
EFFECT, SIGMA = 0.02, 0.5  # per-prediction log loss: canary 0.02 nats worse, spread about 0.5
TAU2 = 0.02**2
ALPHA = 0.05


def _cumulative_stats(seed: int) -> tuple[np.ndarray, ...]:
    """Per-arm running mean and sample variance of every stream at every look (STREAMS x LOOKS each)."""
    rng = np.random.default_rng(seed)
    n = BATCH * np.arange(1, LOOKS + 1)
    out = []
    for mean in (1.0, 1.0 + EFFECT):
        x = rng.normal(mean, SIGMA, size=(STREAMS, LOOKS, BATCH))
        total, squares = x.sum(axis=2).cumsum(axis=1), (x**2).sum(axis=2).cumsum(axis=1)
        out += [total / n, (squares - total**2 / n) / (n - 1)]
    return (*out, n)


def test_running_interval_covers_the_true_effect_at_every_look_where_fixed_intervals_do_not():
    mean_a, var_a, mean_b, var_b, n = _cumulative_stats(seed=21)
    missed = np.zeros(STREAMS, dtype=bool)
    for run in range(STREAMS):
        test = SequentialTest(alpha=ALPHA, tau2=TAU2)
        for t in range(LOOKS):
            d = test.update_means(mean_a[run, t], var_a[run, t], n[t], mean_b[run, t], var_b[run, t], n[t])
            missed[run] |= not d.ci_low <= EFFECT <= d.ci_high
    slack = 2 * math.sqrt(ALPHA * (1 - ALPHA) / STREAMS)  # two Monte Carlo standard errors at the nominal rate
    assert missed.mean() <= ALPHA + slack  # observed 0.018 with this seed

    se = np.sqrt(var_a / n + var_b / n)
    naive_missed = (np.abs(mean_b - mean_a - EFFECT) > stats.norm.isf(ALPHA / 2) * se).any(axis=1)
    assert naive_missed.mean() > ALPHA + slack  # observed 0.30: a 95% CI read 50 times is not one


def test_running_interval_is_nested_and_excludes_zero_exactly_when_the_test_rejects():
    mean_a, var_a, mean_b, var_b, n = _cumulative_stats(seed=22)
    test = SequentialTest(alpha=ALPHA, tau2=TAU2)
    decisions = [
        test.update_means(mean_a[0, t], var_a[0, t], n[t], mean_b[0, t], var_b[0, t], n[t]) for t in range(LOOKS)
    ]
    assert all(y.ci_low >= x.ci_low and y.ci_high <= x.ci_high for x, y in zip(decisions, decisions[1:], strict=False))
    assert all((d.decision == "reject") == (not d.ci_low < 0 < d.ci_high) for d in decisions)
    assert decisions[0].decision == "continue" and decisions[-1].decision == "reject"  # crosses at look 29
    assert decisions[-1].ci_low > 0  # and the interval blames the canary
    first = always_valid_interval(decisions[0].effect, var_a[0, 0] / n[0] + var_b[0, 0] / n[0], TAU2, ALPHA)
    assert (decisions[0].ci_low, decisions[0].ci_high) == pytest.approx(first, rel=1e-12)


def test_interval_is_the_set_the_mixture_likelihood_ratio_does_not_reject():
    effect, variance = 0.013, 2e-5
    low, high = always_valid_interval(effect, variance, TAU2, ALPHA)
    assert low < effect < high and (low + high) / 2 == pytest.approx(effect, rel=1e-12)

    def log_lr(theta: float) -> float:  # mixture over theta + N(0, tau2) against theta
        return 0.5 * math.log(variance / (variance + TAU2)) + TAU2 * (effect - theta) ** 2 / (
            2 * variance * (variance + TAU2)
        )

    for edge in (low, high):
        assert log_lr(edge) == pytest.approx(math.log(1 / ALPHA), rel=1e-9)


def test_interval_shrinks_with_more_data_and_is_wider_than_the_fixed_horizon_one():
    widths = []
    for n in (100, 1_000, 10_000, 100_000):
        variance = 2 * SIGMA**2 / n
        low, high = always_valid_interval(0.0, variance, TAU2, ALPHA)
        widths.append(high - low)
        assert high > stats.norm.isf(ALPHA / 2) * math.sqrt(variance)  # the price of looking any time
    assert all(x > y for x, y in zip(widths, widths[1:], strict=False))
    assert always_valid_interval(0.5, 0.0, TAU2, ALPHA) == (-math.inf, math.inf)


def test_decision_defaults_keep_old_positional_callers_working():
    d = SequentialDecision("continue", None, 1.0, 0.0, 0.0, 1)
    assert (d.ci_low, d.ci_high) == (-math.inf, math.inf)
    first = SequentialTest().update(0, 10, 0, 10)  # no events in either arm: no variance, no information
    assert (first.ci_low, first.ci_high) == (-math.inf, math.inf)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"effect": math.nan}, "effect"),
        ({"variance": -1e-6}, "variance"),
        ({"variance": math.inf}, "variance"),
        ({"tau2": 0.0}, "tau2"),
        ({"alpha": 1.0}, "alpha"),
    ],
)
def test_interval_refuses_bad_input(kwargs, name):
    args = {"effect": 0.0, "variance": 1e-4, "tau2": TAU2, "alpha": ALPHA} | kwargs
    with pytest.raises(ValueError, match=name):
        always_valid_interval(**args)
