"""The mSPRT checked by seeded simulation: error rates at the 2-standard-error slack the design allows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from domainflow.evaluation.experiments import SequentialTest, msprt_p_values

RTOL = 1e-9  # deterministic formulas differ from the reference only by floating-point reordering
RUNS, LOOKS, BATCH = 2000, 50, 200  # BATCH observations per arm between looks
TAU2 = 0.03**2
ALPHA = 0.05


def _simulate(rate_a: float, rate_b: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative successes of all runs at every look (RUNS x LOOKS), plus the per-arm trials at each look."""
    rng = np.random.default_rng(seed)
    s_a = rng.binomial(BATCH, rate_a, size=(RUNS, LOOKS)).cumsum(axis=1)
    s_b = rng.binomial(BATCH, rate_b, size=(RUNS, LOOKS)).cumsum(axis=1)
    return s_a, s_b, BATCH * np.arange(1, LOOKS + 1)


def test_sequential_test_keeps_type_one_error_under_peeking_where_naive_z_tests_do_not():
    s_a, s_b, n = _simulate(0.10, 0.10, seed=11)
    slack = 2 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)  # two Monte Carlo standard errors at the nominal rate

    p_seq = msprt_p_values(s_a, n, s_b, n, TAU2)
    seq_fpr = float((p_seq <= ALPHA).any(axis=1).mean())
    assert seq_fpr <= ALPHA + slack  # observed about 0.02 with this seed

    pooled = (s_a + s_b) / (2 * n)
    z = (s_b - s_a) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    naive_fpr = float((2 * stats.norm.sf(np.abs(z)) <= ALPHA).any(axis=1).mean())
    assert naive_fpr > ALPHA + slack  # observed about 0.3: peeking 50 times breaks the fixed-horizon test


def test_sequential_test_catches_a_worse_canary():
    s_a, s_b, n = _simulate(0.10, 0.13, seed=12)  # b is the canary with a higher error rate
    p_seq = msprt_p_values(s_a, n, s_b, n, TAU2)
    rejected = (p_seq <= ALPHA).any(axis=1)
    assert rejected.mean() >= 0.95  # observed 1.0; a fixed test at the horizon has power ~1 too
    first = (p_seq <= ALPHA).argmax(axis=1)[rejected]
    rows = np.flatnonzero(rejected)
    assert (s_b[rows, first] > s_a[rows, first]).mean() >= 0.99  # and it blames the canary, not the control
    assert np.median(first) < LOOKS / 2  # and usually stops well before the horizon


def test_sequential_class_agrees_with_the_vectorized_kernel():
    s_a, s_b, n = _simulate(0.10, 0.13, seed=13)
    all_p = msprt_p_values(s_a, n, s_b, n, TAU2)
    run = int(np.flatnonzero((all_p <= ALPHA).any(axis=1) & (all_p[:, 0] > ALPHA))[0])  # rejects, but not at once
    expected = all_p[run]
    test = SequentialTest(alpha=ALPHA, tau2=TAU2)
    decisions = [test.update(int(s_a[run, t]), int(n[t]), int(s_b[run, t]), int(n[t])) for t in range(LOOKS)]
    np.testing.assert_allclose([d.p_value for d in decisions], expected, rtol=RTOL)
    assert all(x.p_value >= y.p_value for x, y in zip(decisions, decisions[1:], strict=False))
    assert decisions[-1].looks == LOOKS
    crossed = [d for d in decisions if d.decision == "reject"]
    assert crossed and crossed[0].direction == "b_higher"
    assert all(d.decision == "reject" for d in decisions[decisions.index(crossed[0]) :])  # rejection is sticky


def test_sequential_means_reject_a_slower_canary_and_not_an_equal_one():
    rng = np.random.default_rng(5)
    slower, equal = SequentialTest(tau2=0.1**2), SequentialTest(tau2=0.1**2)
    a = rng.normal(1.0, 0.5, 4000)
    b_slow, b_same = rng.normal(1.1, 0.5, 4000), rng.normal(1.0, 0.5, 4000)
    for m in range(200, 4001, 200):
        args = (a[:m].mean(), a[:m].var(ddof=1), m)
        last_slow = slower.update_means(*args, b_slow[:m].mean(), b_slow[:m].var(ddof=1), m)
        last_same = equal.update_means(*args, b_same[:m].mean(), b_same[:m].var(ddof=1), m)
    assert last_slow.decision == "reject" and last_slow.direction == "b_higher"
    assert last_same.decision == "continue" and last_same.direction is None


def test_sequential_refuses_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        SequentialTest(alpha=1.0)
    with pytest.raises(ValueError, match="tau2"):
        SequentialTest(tau2=0)
    test = SequentialTest()
    test.update(10, 100, 12, 100)
    with pytest.raises(ValueError, match="cumulative"):
        test.update(10, 50, 12, 100)
    with pytest.raises(ValueError, match="trials_a/b must be >= successes_a/b"):
        test.update(10, 200, 300, 200)
