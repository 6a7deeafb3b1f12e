"""Sample size and power of the two-sided two-proportion z-test and the two-sample t-test."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from domainflow.evaluation.experiments.inputs import check_open_unit


@dataclass(frozen=True)
class SampleSize:
    """Observations needed per arm (rounded up)."""

    n_control: int
    n_treatment: int

    @property
    def total(self) -> int:
        return self.n_control + self.n_treatment


def _two_prop_stds(p_control: float, effect: float, ratio: float) -> tuple[float, float]:
    """Per-control-observation standard deviations of ``p_t - p_c`` under H0 (pooled) and H1 (unpooled)."""
    p_t = p_control + effect
    pooled = (p_control + ratio * p_t) / (1 + ratio)
    std_null = math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio))
    std_alt = math.sqrt(p_control * (1 - p_control) + p_t * (1 - p_t) / ratio)
    return std_null, std_alt


def _check_power_args(p_control: float, minimum_detectable_effect: float, alpha: float, ratio: float) -> None:
    check_open_unit("p_control", p_control)
    check_open_unit("alpha", alpha)
    if minimum_detectable_effect == 0 or not math.isfinite(minimum_detectable_effect):
        raise ValueError(
            f"minimum_detectable_effect must be a non-zero rate difference, got {minimum_detectable_effect}"
        )
    if not 0 < p_control + minimum_detectable_effect < 1:
        raise ValueError(
            f"minimum_detectable_effect={minimum_detectable_effect} moves p_control={p_control} outside (0, 1)"
        )
    if not ratio > 0 or not math.isfinite(ratio):
        raise ValueError(f"ratio (n_treatment / n_control) must be positive, got {ratio}")


def sample_size_two_proportions(
    p_control: float, minimum_detectable_effect: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> SampleSize:
    """Per-arm sample size for a two-sided two-proportion z-test to detect an absolute lift.

    Normal approximation with the pooled variance under H0 and the unpooled variance under H1, ignoring the
    far rejection tail (negligible at useful powers); this is statsmodels'
    ``samplesize_proportions_2indep_onetail``. ``ratio = n_treatment / n_control``.
    """
    _check_power_args(p_control, minimum_detectable_effect, alpha, ratio)
    power = check_open_unit("power", power)
    std_null, std_alt = _two_prop_stds(p_control, minimum_detectable_effect, ratio)
    z = stats.norm.isf(alpha / 2) * std_null + stats.norm.isf(1 - power) * std_alt
    n_control = (max(z, 0.0) / minimum_detectable_effect) ** 2
    # 1e-9 guards against a float result like 1234.0000000002 adding a spurious observation
    return SampleSize(math.ceil(n_control - 1e-9), math.ceil(n_control * ratio - 1e-9))


def power_two_proportions(
    p_control: float, minimum_detectable_effect: float, n_control: float, alpha: float = 0.05, ratio: float = 1.0
) -> float:
    """Power of the two-sided two-proportion z-test with ``n_control`` and ``ratio * n_control`` observations.

    Same approximation as :func:`sample_size_two_proportions` but counting both rejection tails, i.e.
    statsmodels' ``power_proportions_2indep``.
    """
    _check_power_args(p_control, minimum_detectable_effect, alpha, ratio)
    if not n_control > 0:
        raise ValueError(f"n_control must be positive, got {n_control}")
    std_null, std_alt = _two_prop_stds(p_control, minimum_detectable_effect, ratio)
    crit = stats.norm.isf(alpha / 2) * std_null / std_alt
    shift = minimum_detectable_effect * math.sqrt(n_control) / std_alt
    return float(stats.norm.sf(crit - shift) + stats.norm.cdf(-crit - shift))


def _t_test_power(effect_size: float, n_control: float, alpha: float, ratio: float) -> float:
    """Power of the two-sided pooled two-sample t-test, both tails counted (statsmodels' ``TTestIndPower``)."""
    n_treatment = ratio * n_control
    dof = n_control + n_treatment - 2
    noncentrality = effect_size * math.sqrt(n_control * n_treatment / (n_control + n_treatment))
    crit = stats.t.isf(alpha / 2, dof)
    return float(stats.nct.sf(crit, dof, noncentrality) + stats.nct.cdf(-crit, dof, noncentrality))


def sample_size_two_means(
    variance: float, minimum_detectable_effect: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> SampleSize:
    """Per-arm sample size for a two-sided two-sample t-test to detect an absolute difference of means.

    Starts from the textbook normal formula ``(z_{alpha/2} + z_power)^2 * variance * (1 + 1/ratio) / mde^2``
    and settles on the smallest ``n_control`` whose noncentral-t power reaches ``power``, which is what
    statsmodels' ``tt_ind_solve_power`` solves (the t tails add a few observations at small n). ``variance``
    is the common per-observation variance; ``ratio = n_treatment / n_control``.
    """
    alpha, power = check_open_unit("alpha", alpha), check_open_unit("power", power)
    if not variance > 0 or not math.isfinite(variance):
        raise ValueError(f"variance must be positive and finite, got {variance}")
    if minimum_detectable_effect == 0 or not math.isfinite(minimum_detectable_effect):
        raise ValueError(f"minimum_detectable_effect must be a non-zero difference, got {minimum_detectable_effect}")
    if not ratio > 0 or not math.isfinite(ratio):
        raise ValueError(f"ratio (n_treatment / n_control) must be positive, got {ratio}")
    effect_size = abs(minimum_detectable_effect) / math.sqrt(variance)
    z = stats.norm.isf(alpha / 2) + stats.norm.isf(1 - power)
    n_control = max(2, math.ceil(max(z, 0.0) ** 2 * (1 + 1 / ratio) / effect_size**2 - 1e-9))
    while _t_test_power(effect_size, n_control, alpha, ratio) < power:
        n_control += 1
    while n_control > 2 and _t_test_power(effect_size, n_control - 1, alpha, ratio) >= power:
        n_control -= 1
    return SampleSize(n_control, math.ceil(n_control * ratio - 1e-9))
