"""Fixed-horizon tests: Welch's t, the two-proportion z-test, Pearson's chi-square and Holm's correction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from domainflow.evaluation.experiments.inputs import check_counts, check_open_unit, check_sample


@dataclass(frozen=True)
class TestResult:
    """A two-sample test: statistic, two-sided p-value and the CI of ``effect = b - a``."""

    __test__ = False  # not a pytest test class, despite the name

    statistic: float
    p_value: float
    effect: float
    ci_low: float
    ci_high: float
    confidence: float


@dataclass(frozen=True)
class ChiSquareResult:
    """Pearson chi-square test of equal proportions across k variants."""

    statistic: float
    p_value: float
    dof: int


@dataclass(frozen=True)
class HolmResult:
    """Holm step-down adjusted p-values and the rejections they imply at ``alpha``."""

    adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    alpha: float


def welch_t_test(a: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> TestResult:
    """Welch's t-test of ``mean(b) - mean(a)``; no equal-variance assumption, since arms rarely share one."""
    confidence = check_open_unit("confidence", confidence)
    x, y = check_sample("a", a), check_sample("b", b)
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se2 = va + vb
    if se2 == 0:
        raise ValueError("a and b both have zero variance; the t statistic is undefined")
    se = math.sqrt(se2)
    dof = se2**2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    effect = float(y.mean() - x.mean())
    t = effect / se
    half = stats.t.ppf(0.5 + confidence / 2, dof) * se
    return TestResult(t, float(2 * stats.t.sf(abs(t), dof)), effect, effect - half, effect + half, confidence)


def two_proportion_z_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = 0.95
) -> TestResult:
    """Two-proportion z-test of ``rate_b - rate_a``.

    The statistic uses the pooled variance (exact under H0, the usual textbook test); the CI uses the
    unpooled (Wald) variance because it describes the effect where it actually is.
    """
    confidence = check_open_unit("confidence", confidence)
    s, n = check_counts([successes_a, successes_b], [trials_a, trials_b])
    z, p, effect, lo, hi = z_tests_vs_control(s[0], n[0], s[1:], n[1:], confidence)
    return TestResult(float(z[0]), float(p[0]), float(effect[0]), float(lo[0]), float(hi[0]), confidence)


def z_tests_vs_control(
    s0: float, n0: float, s: NDArray[np.float64], n: NDArray[np.float64], confidence: float
) -> tuple[NDArray[np.float64], ...]:
    """Vectorized pooled z-tests and Wald CIs of each (s, n) against the control (s0, n0)."""
    p0, p = s0 / n0, s / n
    effect = p - p0
    pooled = (s0 + s) / (n0 + n)
    se_null = np.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se_null > 0, effect / se_null, 0.0)
    p_value = 2 * stats.norm.sf(np.abs(z))
    se_alt = np.sqrt(p0 * (1 - p0) / n0 + p * (1 - p) / n)
    half = stats.norm.ppf(0.5 + confidence / 2) * se_alt
    return z, p_value, effect, effect - half, effect + half


def chi_square_test(successes: ArrayLike, trials: ArrayLike) -> ChiSquareResult:
    """Pearson chi-square test that k >= 2 variants share one success rate (no continuity correction).

    A pooled rate of exactly 0 or 1 leaves nothing to compare, so it returns statistic 0 and p-value 1.
    """
    s, n = check_counts(successes, trials, min_len=2)
    observed = np.vstack([s, n - s])
    expected = np.outer(observed.sum(axis=1), n) / n.sum()
    dof = s.size - 1
    if np.any(expected.sum(axis=1) == 0):
        return ChiSquareResult(0.0, 1.0, dof)
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return ChiSquareResult(statistic, float(stats.chi2.sf(statistic, dof)), dof)


def holm_correction(p_values: ArrayLike, alpha: float = 0.05) -> HolmResult:
    """Holm step-down adjustment: controls the family-wise error rate and is uniformly stronger than Bonferroni."""
    alpha = check_open_unit("alpha", alpha)
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size == 0:
        raise ValueError("p_values must not be empty")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p_values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return HolmResult(tuple(adjusted.tolist()), tuple((adjusted <= alpha).tolist()), alpha)
