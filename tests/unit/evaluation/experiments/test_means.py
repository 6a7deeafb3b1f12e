"""A/B/n verdicts on a continuous metric, checked against scipy and statsmodels where they overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import tt_ind_solve_power

from domainflow.evaluation.experiments import compare_variant_means, sample_size_two_means

RTOL = 1e-9  # deterministic formulas differ from the reference only by floating-point reordering
SIGMA = 0.3  # spread of per-prediction log loss


def test_welch_tests_and_intervals_match_scipy_and_holm_matches_statsmodels():
    rng = np.random.default_rng(3)
    arms = [rng.normal(0.50, 0.30, 40), rng.normal(0.42, 0.45, 25), rng.normal(0.55, 0.20, 60)]
    verdict = compare_variant_means(
        [x.mean() for x in arms], [x.var(ddof=1) for x in arms], [x.size for x in arms], alpha=0.10
    )
    raw = []
    for row, arm in zip(verdict.variants[1:], arms[1:], strict=True):
        ref = stats.ttest_ind(arm, arms[0], equal_var=False)  # variant first: effect = variant - control
        ci = ref.confidence_interval(confidence_level=0.90)
        assert row.p_value == pytest.approx(ref.pvalue, rel=RTOL)
        assert (row.ci_low, row.ci_high) == pytest.approx((ci.low, ci.high), rel=RTOL)
        assert row.effect == pytest.approx(arm.mean() - arms[0].mean(), rel=RTOL)
        from_stats = stats.ttest_ind_from_stats(
            arm.mean(), arm.std(ddof=1), arm.size, arms[0].mean(), arms[0].std(ddof=1), arms[0].size, equal_var=False
        )
        assert row.p_value == pytest.approx(from_stats.pvalue, rel=RTOL)
        raw.append(ref.pvalue)
    expected = multipletests(raw, method="holm")[1]
    np.testing.assert_allclose([r.adjusted_p_value for r in verdict.variants[1:]], expected, rtol=1e-6)
    control = verdict.variants[0]
    assert (control.effect, control.p_value, control.significant) == (0.0, 1.0, False)
    assert sum(r.prob_best for r in verdict.variants) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("variance", "mde", "alpha", "power", "ratio"),
    [
        (0.09, 0.01, 0.05, 0.8, 1.0),
        (0.25, 0.05, 0.025, 0.9, 1.0),
        (4.0, 1.5, 0.05, 0.8, 2.0),
        (1.0, 0.8, 0.01, 0.8, 0.5),
        (1.0, 3.0, 0.05, 0.8, 1.0),  # the normal formula says 2, the t-test needs 4
    ],
)
def test_sample_size_two_means_matches_statsmodels(variance, mde, alpha, power, ratio):
    size = sample_size_two_means(variance, mde, alpha=alpha, power=power, ratio=ratio)
    # statsmodels: nobs2 = ratio * nobs1 and the effect size is standardized by the common standard deviation
    n_control = tt_ind_solve_power(effect_size=mde / math.sqrt(variance), alpha=alpha, power=power, ratio=ratio)
    assert size.n_control == math.ceil(n_control)
    assert size.n_treatment == math.ceil(size.n_control * ratio)
    assert sample_size_two_means(variance, -mde, alpha=alpha, power=power, ratio=ratio) == size  # sign is moot


def test_compare_variant_means_names_a_clear_winner_and_flips_it_when_higher_is_better():
    means, variances, counts = [0.50, 0.55, 0.45], [SIGMA**2] * 3, [20_000] * 3
    names = ["champion", "canary_a", "canary_b"]
    lower = compare_variant_means(means, variances, counts, names=names)
    assert lower.decision == "winner" and lower.winner == "canary_b"
    best = lower.variants[2]
    assert best.significant and best.effect == pytest.approx(-0.05) and best.ci_high < 0 and best.prob_best > 0.99
    assert best.expected_loss < 1e-3 and lower.variants[0].expected_loss == pytest.approx(0.05, abs=2e-3)
    assert "lower is better" in lower.reason

    higher = compare_variant_means(means, variances, counts, names=names, lower_is_better=False)
    assert higher.decision == "winner" and higher.winner == "canary_a"
    assert [r.p_value for r in higher.variants] == [r.p_value for r in lower.variants]  # the tests do not change


def test_compare_variant_means_crowns_the_control_when_every_variant_is_worse():
    verdict = compare_variant_means([0.45, 0.50, 0.52], [SIGMA**2] * 3, [20_000] * 3)
    assert verdict.decision == "winner" and verdict.winner == "variant_0"


def test_compare_variant_means_asks_for_more_data_when_it_cannot_tell():
    variances = [0.088, 0.090, 0.092]
    verdict = compare_variant_means([0.500, 0.502, 0.499], variances, [500] * 3, min_detectable_effect=0.01)
    assert verdict.decision == "continue" and verdict.winner is None
    required = sample_size_two_means(float(np.mean(variances)), 0.01, alpha=0.05 / 2, power=0.8).n_control
    assert verdict.required_samples_per_variant == required
    assert verdict.additional_samples_per_variant == required - 500 > 0
    assert f"about {required - 500} more are needed" in verdict.reason


def test_no_winner_is_named_before_the_planned_sample_however_often_one_looks():
    """Issue 16: Welch tests read at every look named a winner among three equal arms far more often than alpha.

    200 A/A/A experiments, looked at every 1,000 labels per arm up to 90 % of the planned sample (the
    plan is re-estimated from the arms' variance at each look), then at the plan.
    """
    rng = np.random.default_rng(0)
    required = sample_size_two_means(SIGMA**2, 0.01, alpha=0.05 / 2, power=0.8).n_control
    early_winners = winners_at_plan = 0
    for _ in range(200):
        losses = rng.normal(0.5, SIGMA, size=(3, required))
        looks = [*range(1_000, int(0.9 * required), 1_000), required]
        named = [compare_variant_means(losses[:, :n].mean(axis=1), losses[:, :n].var(axis=1, ddof=1), [n] * 3,
                                       draws=2_000).decision == "winner" for n in looks]  # fmt: skip
        early_winners += any(named[:-1])
        winners_at_plan += named[-1]
    assert early_winners == 0
    assert winners_at_plan <= 0.05 * 200 * 1.5


def test_compare_variant_means_gives_up_once_the_planned_sample_is_reached():
    verdict = compare_variant_means([0.500, 0.5002, 0.4999], [0.09] * 3, [200_000] * 3, min_detectable_effect=0.01)
    assert verdict.decision == "no_winner" and verdict.additional_samples_per_variant == 0
    assert 0 < verdict.required_samples_per_variant <= 200_000


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([0.5], [0.1], [10]), {}, "means needs at least 2 variants"),
        (([0.5, 0.4], [0.1, -0.1], [10, 10]), {}, "variances must be non-negative"),
        (([0.5, 0.4], [0.1, 0.1], [10, 1]), {}, "counts must be whole numbers >= 2"),
        (([0.5, 0.4], [0.1, 0.1], [10, 10.5]), {}, "counts must be whole numbers >= 2"),
        (([0.5, 0.4, 0.3], [0.1, 0.1], [10, 10, 10]), {}, "mismatched lengths"),
        (([0.5, math.nan], [0.1, 0.1], [10, 10]), {}, "means must be finite"),
        (([0.5, 0.4], [0.0, 0.0], [10, 10]), {}, "variances of variant_0 and variant_1 are both zero"),
        (([0.5, 0.4], [0.1, 0.1], [10, 10]), {"names": ["only_one"]}, "names"),
        (([0.5, 0.4], [0.1, 0.1], [10, 10]), {"alpha": 0.0}, "alpha"),
        (([0.5, 0.4], [0.1, 0.1], [10, 10]), {"power": 1.0}, "power"),
        (([0.5, 0.4], [0.1, 0.1], [10, 10]), {"min_detectable_effect": 0.0}, "min_detectable_effect"),
        (([0.5, 0.4], [0.1, 0.1], [10, 10]), {"draws": 0}, "draws"),
    ],
)
def test_compare_variant_means_refuses_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare_variant_means(*args, **kwargs)


def test_sample_size_two_means_refuses_bad_input():
    with pytest.raises(ValueError, match="variance"):
        sample_size_two_means(0.0, 0.01)
    with pytest.raises(ValueError, match="minimum_detectable_effect"):
        sample_size_two_means(0.09, 0.0)
    with pytest.raises(ValueError, match="ratio"):
        sample_size_two_means(0.09, 0.01, ratio=-1.0)
    with pytest.raises(ValueError, match="power"):
        sample_size_two_means(0.09, 0.01, power=0.0)
