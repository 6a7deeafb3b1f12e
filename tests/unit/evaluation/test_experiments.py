"""Experiment statistics checked against scipy/statsmodels references, closed forms and seeded simulations.

Tolerances: deterministic formulas are compared at 1e-9 relative (they differ from the reference only by
floating-point reordering); Monte Carlo quantities at 4 standard errors (a false alarm about 1 in 16,000);
the sequential-test error rates at the 2-standard-error slack the design allows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    power_proportions_2indep,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)

from domainflow.evaluation.experiments import (
    SequentialTest,
    beta_binomial_comparison,
    chi_square_test,
    compare_variants,
    holm_correction,
    msprt_p_values,
    power_two_proportions,
    sample_size_two_proportions,
    two_proportion_z_test,
    welch_t_test,
)

RTOL = 1e-9

# ----------------------------------------------------------------------------- frequentist tests


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


# ----------------------------------------------------------------------------- Bayesian


def _prob_b_beats_a(a: stats.rv_continuous, b: stats.rv_continuous) -> float:
    """P(theta_b > theta_a) = integral of pdf_b * cdf_a over [0, 1]."""
    return integrate.quad(lambda x: b.pdf(x) * a.cdf(x), 0, 1, epsabs=1e-12, limit=200)[0]


def _expected_max(a: stats.rv_continuous, b: stats.rv_continuous) -> float:
    """E[max(theta_a, theta_b)] = integral of (1 - F_a F_b) over [0, 1] for variables on [0, 1]."""
    return integrate.quad(lambda x: 1 - a.cdf(x) * b.cdf(x), 0, 1, epsabs=1e-12, limit=200)[0]


@pytest.mark.parametrize(
    ("successes", "trials"), [([40, 52], [400, 410]), ([3, 9], [30, 35]), ([120, 118], [1000, 990])]
)
def test_beta_binomial_two_arms_match_numerical_integrals(successes, trials):
    draws = 100_000
    res = beta_binomial_comparison(successes, trials, prior=(1, 1), draws=draws, seed=7)
    post_a = stats.beta(1 + successes[0], 1 + trials[0] - successes[0])
    post_b = stats.beta(1 + successes[1], 1 + trials[1] - successes[1])

    p_b = _prob_b_beats_a(post_a, post_b)
    mc_se = math.sqrt(p_b * (1 - p_b) / draws)  # binomial standard error of a frequency over `draws`
    assert res.prob_best[1] == pytest.approx(p_b, abs=4 * mc_se)
    assert sum(res.prob_best) == pytest.approx(1.0)

    # the loss of arm i is E[max] - E[theta_i]; its MC s.e. is bounded by sqrt(E[(theta_b - theta_a)^2] / draws)
    e_max = _expected_max(post_a, post_b)
    loss_sd = math.sqrt(post_a.var() + post_b.var() + (post_a.mean() - post_b.mean()) ** 2)
    tol = 4 * loss_sd / math.sqrt(draws)
    assert res.expected_loss[0] == pytest.approx(e_max - post_a.mean(), abs=tol)
    assert res.expected_loss[1] == pytest.approx(e_max - post_b.mean(), abs=tol)
    assert res.posterior_mean == pytest.approx((post_a.mean(), post_b.mean()), rel=RTOL)
    assert res.credible_low[0] == pytest.approx(post_a.ppf(0.025), rel=RTOL)


def test_identical_arms_share_the_probability_to_be_best():
    draws = 100_000
    res = beta_binomial_comparison([50, 50, 50], [500, 500, 500], draws=draws, seed=3)
    se = math.sqrt((1 / 3) * (2 / 3) / draws)
    assert res.prob_best == pytest.approx((1 / 3,) * 3, abs=4 * se)
    assert max(res.expected_loss) - min(res.expected_loss) < 5e-4  # a few MC s.e. of a ~0.01-sized loss
    assert beta_binomial_comparison([50, 50, 50], [500, 500, 500], draws=draws, seed=3) == res  # seeded


def test_beta_binomial_refuses_bad_counts():
    with pytest.raises(ValueError, match="mismatched lengths"):
        beta_binomial_comparison([1, 2], [10, 10, 10])
    with pytest.raises(ValueError, match="trials must be >= successes"):
        beta_binomial_comparison([11, 2], [10, 10])
    with pytest.raises(ValueError, match="successes must be non-negative"):
        beta_binomial_comparison([-1, 2], [10, 10])
    with pytest.raises(ValueError, match="prior"):
        beta_binomial_comparison([1, 2], [10, 10], prior=(0, 1))


# ----------------------------------------------------------------------------- power


POWER_CASES = [(0.10, 0.02, 1.0), (0.30, -0.05, 1.0), (0.05, 0.01, 2.0), (0.50, 0.10, 0.5)]


@pytest.mark.parametrize(("p_control", "mde", "ratio"), POWER_CASES)
def test_sample_size_matches_statsmodels(p_control, mde, ratio):
    size = sample_size_two_proportions(p_control, mde, alpha=0.05, power=0.8, ratio=ratio)
    # statsmodels: sample 1 is the treatment (p2 + diff), nobs2 = ratio_sm * nobs1, so ratio_sm = 1 / ratio
    n_treatment = samplesize_proportions_2indep_onetail(mde, p_control, 0.8, ratio=1 / ratio, alpha=0.05)
    assert size.n_treatment == math.ceil(n_treatment)
    assert size.n_control == math.ceil(n_treatment / ratio)


@pytest.mark.parametrize(("p_control", "mde", "ratio"), POWER_CASES)
def test_power_matches_statsmodels_and_inverts_sample_size(p_control, mde, ratio):
    n_control = 1234
    ref = power_proportions_2indep(mde, p_control, ratio * n_control, ratio=1 / ratio, alpha=0.05, return_results=False)
    assert power_two_proportions(p_control, mde, n_control, alpha=0.05, ratio=ratio) == pytest.approx(ref, rel=RTOL)

    needed = sample_size_two_proportions(p_control, mde, power=0.9, ratio=ratio).n_control
    assert power_two_proportions(p_control, mde, needed, ratio=ratio) >= 0.9
    assert power_two_proportions(p_control, mde, needed - 1, ratio=ratio) < 0.9


def test_power_refuses_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        sample_size_two_proportions(0.1, 0.01, alpha=1.5)
    with pytest.raises(ValueError, match="minimum_detectable_effect"):
        sample_size_two_proportions(0.1, 0.0)
    with pytest.raises(ValueError, match="minimum_detectable_effect"):
        power_two_proportions(0.95, 0.1, 100)
    with pytest.raises(ValueError, match="ratio"):
        sample_size_two_proportions(0.1, 0.01, ratio=0)


# ----------------------------------------------------------------------------- sequential test

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


# ----------------------------------------------------------------------------- A/B/n verdict


def test_compare_variants_names_a_clear_winner():
    verdict = compare_variants([1000, 1010, 1300], [10_000, 10_000, 10_000], names=["control", "blue", "green"])
    assert verdict.decision == "winner" and verdict.winner == "green"
    green = verdict.variants[2]
    assert green.significant and green.effect == pytest.approx(0.03)
    assert green.ci_low > 0 and green.prob_best > 0.99
    assert not verdict.variants[1].significant
    # the per-variant tests are the plain z-tests, Holm-adjusted
    raw = [proportions_ztest([s, 1000], [10_000, 10_000])[1] for s in (1010, 1300)]
    expected = multipletests(raw, method="holm")[1]
    np.testing.assert_allclose([v.adjusted_p_value for v in verdict.variants[1:]], expected, rtol=1e-6)


def test_compare_variants_crowns_the_control_when_it_beats_everyone():
    verdict = compare_variants([1300, 1000, 1020], [10_000, 10_000, 10_000])
    assert verdict.decision == "winner" and verdict.winner == "variant_0"


def test_compare_variants_asks_for_more_data_when_it_cannot_tell():
    verdict = compare_variants([100, 105, 98], [1000, 1000, 1000], min_detectable_effect=0.01)
    assert verdict.decision == "continue" and verdict.winner is None
    required = sample_size_two_proportions(0.10, 0.01, alpha=0.05 / 2, power=0.8).n_control
    assert verdict.required_samples_per_variant == required
    assert verdict.additional_samples_per_variant == required - 1000 > 0
    assert f"{required - 1000} more samples" in verdict.reason


def test_compare_variants_gives_up_once_the_planned_sample_is_reached():
    verdict = compare_variants([2000, 2010, 1995], [20_000, 20_000, 20_000], min_detectable_effect=0.02)
    assert verdict.decision == "no_winner" and verdict.additional_samples_per_variant == 0


def test_compare_variants_refuses_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        compare_variants([1, 2, 3], [10, 10, 10], alpha=0)
    with pytest.raises(ValueError, match="mismatched lengths"):
        compare_variants([1, 2, 3], [10, 10])
    with pytest.raises(ValueError, match="trials must be >= successes"):
        compare_variants([1, 20, 3], [10, 10, 10])
    with pytest.raises(ValueError, match="trials must be non-negative"):
        compare_variants([0, 2, 3], [-1, 10, 10])
    with pytest.raises(ValueError, match="at least 2 variants"):
        compare_variants([1], [10])
    with pytest.raises(ValueError, match="names"):
        compare_variants([1, 2], [10, 10], names=["only_one"])
