"""Fixed-horizon tests checked against scipy and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from domainflow.evaluation.experiments import chi_square_test, holm_correction, two_proportion_z_test, welch_t_test

RTOL = 1e-9  # deterministic formulas differ from the reference only by floating-point reordering


@pytest.mark.parametrize(
    ("n_a", "n_b", "shift", "scale_b", "confidence"),
    [(30, 30, 0.0, 1.0, 0.95), (12, 50, 0.7, 3.0, 0.90), (200, 75, -0.2, 0.5, 0.99)],
)
def test_welch_matches_scipy(n_a, n_b, shift, scale_b, confidence):
    rng = np.random.default_rng(n_a + n_b)
    a, b = rng.normal(0, 1, n_a), rng.normal(shift, scale_b, n_b)
    res = welch_t_test(a, b, confidence=confidence)
    ref = stats.ttest_ind(b, a, equal_var=False)  # b first: effect = mean(b) - mean(a)
    ci = ref.confidence_interval(confidence_level=confidence)
    assert res.statistic == pytest.approx(ref.statistic, rel=RTOL)
    assert res.p_value == pytest.approx(ref.pvalue, rel=RTOL)
    assert res.effect == pytest.approx(b.mean() - a.mean(), rel=RTOL)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), rel=RTOL)


def test_welch_refuses_degenerate_samples():
    with pytest.raises(ValueError, match="a needs at least 2"):
        welch_t_test([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="zero variance"):
        welch_t_test([1.0, 1.0], [2.0, 2.0])
    with pytest.raises(ValueError, match="confidence"):
        welch_t_test([1.0, 2.0], [1.0, 3.0], confidence=1.0)


@pytest.mark.parametrize(("s_a", "n_a", "s_b", "n_b"), [(100, 1000, 130, 1000), (45, 300, 30, 410), (7, 90, 7, 90)])
def test_two_proportion_z_test_matches_statsmodels(s_a, n_a, s_b, n_b):
    res = two_proportion_z_test(s_a, n_a, s_b, n_b, confidence=0.95)
    z, p = proportions_ztest([s_b, s_a], [n_b, n_a])  # pooled variance, b - a
    lo, hi = confint_proportions_2indep(s_b, n_b, s_a, n_a, method="wald", compare="diff")
    assert res.statistic == pytest.approx(z, rel=RTOL, abs=1e-12)
    assert res.p_value == pytest.approx(p, rel=RTOL)
    assert (res.ci_low, res.ci_high) == pytest.approx((lo, hi), rel=RTOL)


@pytest.mark.parametrize(
    ("successes", "trials"),
    [([10, 25], [100, 120]), ([100, 130, 90], [1000, 1000, 1000]), ([3, 50, 12, 40, 0], [20, 300, 80, 150, 10])],
)
def test_chi_square_matches_scipy(successes, trials):
    res = chi_square_test(successes, trials)
    table = np.array([successes, np.subtract(trials, successes)])
    ref = stats.chi2_contingency(table, correction=False)
    assert res.statistic == pytest.approx(ref.statistic, rel=RTOL)
    assert res.p_value == pytest.approx(ref.pvalue, rel=RTOL)
    assert res.dof == ref.dof == len(successes) - 1


def test_chi_square_without_any_success_has_nothing_to_test():
    assert chi_square_test([0, 0, 0], [10, 20, 30]).p_value == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 0.03, 4), rng.uniform(0, 1, 6), [0.01, 0.01]])  # ties included
    rng.shuffle(p)
    res = holm_correction(p, alpha=0.05)
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="holm")
    np.testing.assert_allclose(res.adjusted, adjusted, rtol=RTOL)
    assert res.reject == tuple(reject.tolist())


def test_holm_refuses_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        holm_correction([0.1, 0.2], alpha=0.0)
    with pytest.raises(ValueError, match="p_values"):
        holm_correction([0.1, 1.2])
