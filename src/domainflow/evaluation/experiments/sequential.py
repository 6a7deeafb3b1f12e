"""Mixture sequential probability ratio test (mSPRT): always-valid p-values for continuous monitoring."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from domainflow.evaluation.experiments.inputs import check_counts, check_open_unit


@dataclass(frozen=True)
class SequentialDecision:
    """State of an mSPRT after one look; ``p_value`` and ``[ci_low, ci_high]`` are always-valid.

    The interval is the running intersection of the per-look confidence sequence, so it never widens and
    excludes 0 exactly when the test has rejected. It only comes out empty (``ci_low > ci_high``) on the
    alpha-probability event that coverage failed, or when the true effect drifted between looks.
    """

    decision: Literal["continue", "reject"]
    direction: Literal["b_higher", "b_lower"] | None
    p_value: float
    statistic: float  # log of the mixture likelihood ratio at this look
    effect: float  # current estimate of b - a
    looks: int
    ci_low: float = -math.inf
    ci_high: float = math.inf


def _msprt_log_lr(effect: NDArray[np.float64], variance: NDArray[np.float64], tau2: float) -> NDArray[np.float64]:
    """Log mixture likelihood ratio of N(effect | theta, V) against theta=0 with theta ~ N(0, tau2).

    Closed form (Johari et al. 2017): ``0.5*log(V/(V+tau2)) + tau2*effect^2 / (2V(V+tau2))``. With no
    variance yet (no events in either arm) there is no evidence: log-LR 0.
    """
    safe = np.where(variance > 0, variance, 1.0)
    log_lr = 0.5 * np.log(safe / (safe + tau2)) + tau2 * effect**2 / (2 * safe * (safe + tau2))
    return np.where(variance > 0, log_lr, 0.0)


def _check_tau2(tau2: float) -> float:
    if not tau2 > 0 or not math.isfinite(tau2):
        raise ValueError(f"tau2 must be positive and finite, got {tau2}")
    return float(tau2)


def _mixture_radius(variance: float, tau2: float, alpha: float) -> float:
    """Half-width of ``{theta : mixture LR against theta < 1/alpha}``; infinite with no variance yet."""
    if variance == 0:
        return math.inf
    return math.sqrt(
        2 * variance * (variance + tau2) / tau2 * (math.log(1 / alpha) + 0.5 * math.log1p(tau2 / variance))
    )


def always_valid_interval(effect: float, variance: float, tau2: float, alpha: float) -> tuple[float, float]:
    """Confidence sequence dual to the mSPRT's N(0, tau2) mixture (Johari, Pekelis & Walsh 2017).

    ``effect ± sqrt(2V(V+tau2)/tau2 * (log(1/alpha) + 0.5*log((V+tau2)/V)))`` covers the true effect at every
    look simultaneously with probability >= 1 - alpha, so, unlike a fixed-horizon CI, it may be read (and
    acted on) after each batch; intervals from successive looks may be intersected. ``variance`` is the
    variance of ``effect``; 0 (no data yet) gives the whole line.
    """
    if not math.isfinite(effect):
        raise ValueError(f"effect must be finite, got {effect}")
    if not variance >= 0 or not math.isfinite(variance):
        raise ValueError(f"variance must be non-negative and finite, got {variance}")
    radius = _mixture_radius(float(variance), _check_tau2(tau2), check_open_unit("alpha", alpha))
    return effect - radius, effect + radius


def _proportion_effect_and_variance(
    s_a: NDArray[np.float64], n_a: NDArray[np.float64], s_b: NDArray[np.float64], n_b: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Difference of rates and its variance with the pooled rate: exact under H0, which is what the test guards."""
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = np.where((n_a > 0) & (n_b > 0), s_b / np.maximum(n_b, 1) - s_a / np.maximum(n_a, 1), 0.0)
        pooled = (s_a + s_b) / np.maximum(n_a + n_b, 1)
        variance = np.where(
            (n_a > 0) & (n_b > 0), pooled * (1 - pooled) * (1 / np.maximum(n_a, 1) + 1 / np.maximum(n_b, 1)), 0.0
        )
    return effect, variance


def msprt_p_values(
    successes_a: ArrayLike, trials_a: ArrayLike, successes_b: ArrayLike, trials_b: ArrayLike, tau2: float
) -> NDArray[np.float64]:
    """Always-valid p-values for cumulative two-proportion counts; looks run along the last axis.

    Vectorized twin of :class:`SequentialTest` for simulation and back-testing: any leading axes are
    independent experiments. ``p_t = min(1, min_{s<=t} 1/LR_s)``, so stopping the first time ``p_t <= alpha``
    keeps the type-I error at or below alpha however often one looks.
    """
    tau2 = _check_tau2(tau2)
    arrays = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (successes_a, trials_a, successes_b, trials_b))
    )
    s_a, n_a, s_b, n_b = arrays
    if np.any(s_a < 0) or np.any(s_b < 0) or np.any(s_a > n_a) or np.any(s_b > n_b):
        raise ValueError("successes_a/successes_b must be non-negative and not exceed trials_a/trials_b")
    effect, variance = _proportion_effect_and_variance(s_a, n_a, s_b, n_b)
    log_lr = _msprt_log_lr(effect, variance, tau2)
    return np.minimum(1.0, np.exp(-np.maximum.accumulate(log_lr, axis=-1)))


class SequentialTest:
    """Mixture sequential probability ratio test (mSPRT) of ``b - a == 0`` for continuous monitoring.

    Feed it cumulative counts after every batch; its p-value is always valid, so a canary can stop at the
    first ``reject`` without inflating the false-positive rate the way repeated fixed-horizon tests do.
    ``tau2`` is the variance of the N(0, tau2) prior over the true difference: set it near the squared effect
    you care about (e.g. ``0.03**2`` for a 3-point rate change). Uses a normal approximation, so it needs
    a few hundred observations per arm before its guarantee is tight. Each decision also carries the
    always-valid interval of ``b - a`` built from the same variance as the test (the pooled one for counts),
    which is what makes "rejected" and "interval excludes 0" the same event.
    """

    def __init__(self, alpha: float = 0.05, tau2: float = 1e-3) -> None:
        self.alpha = check_open_unit("alpha", alpha)
        self.tau2 = _check_tau2(tau2)
        self._p_value = 1.0
        self._looks = 0
        self._last_trials = (0.0, 0.0)
        self._direction: Literal["b_higher", "b_lower"] | None = None
        self._ci = (-math.inf, math.inf)

    @property
    def p_value(self) -> float:
        return self._p_value

    def update(self, successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> SequentialDecision:
        """Record cumulative two-proportion counts (they must not shrink) and return the decision so far."""
        s, n = check_counts([successes_a, successes_b], [trials_a, trials_b], names=("successes_a/b", "trials_a/b"))
        effect, variance = _proportion_effect_and_variance(s[:1], n[:1], s[1:], n[1:])
        return self._step(n[0], n[1], float(effect[0]), float(variance[0]))

    def update_means(
        self, mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int
    ) -> SequentialDecision:
        """Record cumulative means/variances of a continuous metric (e.g. latency) and return the decision."""
        if min(var_a, var_b) < 0:
            raise ValueError(f"var_a and var_b must be non-negative, got {var_a}, {var_b}")
        if min(n_a, n_b) < 2:
            raise ValueError(f"n_a and n_b need at least 2 observations each, got {n_a}, {n_b}")
        return self._step(float(n_a), float(n_b), float(mean_b - mean_a), var_a / n_a + var_b / n_b)

    def _step(self, n_a: float, n_b: float, effect: float, variance: float) -> SequentialDecision:
        if n_a < self._last_trials[0] or n_b < self._last_trials[1]:
            raise ValueError(
                f"trials must be cumulative (non-decreasing): got {n_a:g}, {n_b:g} after {self._last_trials[0]:g}, "
                f"{self._last_trials[1]:g}"
            )
        self._last_trials = (n_a, n_b)
        self._looks += 1
        log_lr = float(_msprt_log_lr(np.array(effect), np.array(variance), self.tau2))
        already = self._p_value <= self.alpha
        self._p_value = min(self._p_value, 1.0, math.exp(-log_lr))
        if self._p_value <= self.alpha and not already:
            # the direction is fixed at the look that first crossed, which is when a canary would act
            self._direction = "b_higher" if effect > 0 else "b_lower"
        radius = _mixture_radius(variance, self.tau2, self.alpha)
        self._ci = (max(self._ci[0], effect - radius), min(self._ci[1], effect + radius))
        decision: Literal["continue", "reject"] = "reject" if self._p_value <= self.alpha else "continue"
        return SequentialDecision(decision, self._direction, self._p_value, log_lr, effect, self._looks, *self._ci)
