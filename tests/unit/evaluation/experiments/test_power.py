"""Sample size and power checked against statsmodels."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.proportion import power_proportions_2indep, samplesize_proportions_2indep_onetail

from domainflow.evaluation.experiments import power_two_proportions, sample_size_two_proportions

RTOL = 1e-9  # deterministic formulas differ from the reference only by floating-point reordering


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
