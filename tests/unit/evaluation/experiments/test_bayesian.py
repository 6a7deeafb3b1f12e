"""Beta-Binomial summaries checked against numerical integrals.

Monte Carlo quantities are compared at 4 standard errors (a false alarm about 1 in 16,000).
"""

from __future__ import annotations

import math

import pytest
from scipy import integrate, stats

from domainflow.evaluation.experiments import beta_binomial_comparison

RTOL = 1e-9  # deterministic formulas differ from the reference only by floating-point reordering


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
