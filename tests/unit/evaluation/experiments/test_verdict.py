"""A/B/n verdicts on counts whose answer is clear, unclear, or settled."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from domainflow.evaluation.experiments import compare_variants, sample_size_two_proportions


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
