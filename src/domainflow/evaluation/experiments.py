"""Statistics for online experiments: A/B/n comparisons and canary analysis.

Pure numpy/scipy so a canary controller can import it without pulling in the orchestration stack.
Conventions used throughout:

* variant 0 (or ``a``) is the control; effects are ``treatment - control`` in rate (or mean) units;
* every result is a frozen dataclass of plain floats/tuples, so verdicts can be logged and compared;
* bad input raises ``ValueError`` naming the offending argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

__all__ = [
    "BayesianResult",
    "ChiSquareResult",
    "HolmResult",
    "SampleSize",
    "SequentialDecision",
    "SequentialTest",
    "TestResult",
    "VariantComparison",
    "Verdict",
    "beta_binomial_comparison",
    "chi_square_test",
    "compare_variants",
    "holm_correction",
    "msprt_p_values",
    "power_two_proportions",
    "sample_size_two_proportions",
    "two_proportion_z_test",
    "welch_t_test",
]


# --------------------------------------------------------------------------- results


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
class BayesianResult:
    """Per-variant posterior summaries from a Beta-Binomial model (tuples indexed like the input)."""

    posterior_mean: tuple[float, ...]
    credible_low: tuple[float, ...]
    credible_high: tuple[float, ...]
    prob_best: tuple[float, ...]
    expected_loss: tuple[float, ...]


@dataclass(frozen=True)
class HolmResult:
    """Holm step-down adjusted p-values and the rejections they imply at ``alpha``."""

    adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    alpha: float


@dataclass(frozen=True)
class SampleSize:
    """Observations needed per arm (rounded up)."""

    n_control: int
    n_treatment: int

    @property
    def total(self) -> int:
        return self.n_control + self.n_treatment


@dataclass(frozen=True)
class SequentialDecision:
    """State of an mSPRT after one look; ``p_value`` is always-valid (monotone across looks)."""

    decision: Literal["continue", "reject"]
    direction: Literal["b_higher", "b_lower"] | None
    p_value: float
    statistic: float  # log of the mixture likelihood ratio at this look
    effect: float  # current estimate of b - a
    looks: int


@dataclass(frozen=True)
class VariantComparison:
    """One variant against the control (the control's own row has no test)."""

    index: int
    name: str
    trials: int
    rate: float
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    adjusted_p_value: float
    significant: bool
    prob_best: float
    expected_loss: float


@dataclass(frozen=True)
class Verdict:
    """Outcome of an A/B/n comparison.

    ``decision`` is ``"winner"`` (``winner`` names it), ``"continue"`` (the data cannot tell yet;
    ``additional_samples_per_variant`` says how many more each arm needs) or ``"no_winner"`` (the planned
    sample size is reached without a detectable difference).
    """

    decision: Literal["winner", "continue", "no_winner"]
    winner: str | None
    reason: str
    additional_samples_per_variant: int
    required_samples_per_variant: int
    variants: tuple[VariantComparison, ...]


# --------------------------------------------------------------------------- validation


def _check_open_unit(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
    return value


def _check_counts(
    successes: ArrayLike, trials: ArrayLike, *, names: tuple[str, str] = ("successes", "trials"), min_len: int = 1
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validate success/trial counts once, so every test reports bad input the same way."""
    s_name, n_name = names
    s = np.atleast_1d(np.asarray(successes, dtype=np.float64))
    n = np.atleast_1d(np.asarray(trials, dtype=np.float64))
    if s.ndim != 1 or n.ndim != 1:
        raise ValueError(f"{s_name} and {n_name} must be one-dimensional")
    if s.shape != n.shape:
        raise ValueError(f"{s_name} and {n_name} have mismatched lengths ({s.size} vs {n.size})")
    if s.size < min_len:
        raise ValueError(f"{s_name} needs at least {min_len} variants, got {s.size}")
    for name, arr in ((s_name, s), (n_name, n)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
        if np.any(arr < 0):
            raise ValueError(f"{name} must be non-negative, got {arr.tolist()}")
        if np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must be whole counts, got {arr.tolist()}")
    if np.any(s > n):
        raise ValueError(
            f"{n_name} must be >= {s_name} for every variant, got {s_name}={s.tolist()}, {n_name}={n.tolist()}"
        )
    if np.any(n == 0):
        raise ValueError(f"{n_name} must be positive for every variant, got {n.tolist()}")
    return s, n


def _sample(name: str, values: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size < 2:
        raise ValueError(f"{name} needs at least 2 observations, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


# --------------------------------------------------------------------------- frequentist tests


def welch_t_test(a: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> TestResult:
    """Welch's t-test of ``mean(b) - mean(a)``; no equal-variance assumption, since arms rarely share one."""
    confidence = _check_open_unit("confidence", confidence)
    x, y = _sample("a", a), _sample("b", b)
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
    confidence = _check_open_unit("confidence", confidence)
    s, n = _check_counts([successes_a, successes_b], [trials_a, trials_b])
    z, p, effect, lo, hi = _z_vs_control(s[0], n[0], s[1:], n[1:], confidence)
    return TestResult(float(z[0]), float(p[0]), float(effect[0]), float(lo[0]), float(hi[0]), confidence)


def _z_vs_control(
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
    s, n = _check_counts(successes, trials, min_len=2)
    observed = np.vstack([s, n - s])
    expected = np.outer(observed.sum(axis=1), n) / n.sum()
    dof = s.size - 1
    if np.any(expected.sum(axis=1) == 0):
        return ChiSquareResult(0.0, 1.0, dof)
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return ChiSquareResult(statistic, float(stats.chi2.sf(statistic, dof)), dof)


def holm_correction(p_values: ArrayLike, alpha: float = 0.05) -> HolmResult:
    """Holm step-down adjustment: controls the family-wise error rate and is uniformly stronger than Bonferroni."""
    alpha = _check_open_unit("alpha", alpha)
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


# --------------------------------------------------------------------------- Bayesian


def beta_binomial_comparison(
    successes: ArrayLike,
    trials: ArrayLike,
    prior: tuple[float, float] = (1.0, 1.0),
    draws: int = 100_000,
    seed: int = 0,
    credibility: float = 0.95,
) -> BayesianResult:
    """Beta-Binomial posteriors per variant, with Monte Carlo probability-to-be-best and expected loss.

    Expected loss is ``E[max_j p_j - p_i]``: the rate we expect to give up by shipping variant i, which is
    what a decision maker actually risks (unlike a p-value). Seeded so that verdicts are reproducible.
    """
    s, n = _check_counts(successes, trials)
    credibility = _check_open_unit("credibility", credibility)
    if len(prior) != 2 or min(prior) <= 0:
        raise ValueError(f"prior must be two positive Beta parameters, got {prior}")
    if draws < 1:
        raise ValueError(f"draws must be positive, got {draws}")
    a_post, b_post = prior[0] + s, prior[1] + n - s
    rng = np.random.default_rng(seed)
    samples = rng.beta(a_post, b_post, size=(int(draws), s.size))
    best = samples.max(axis=1, keepdims=True)
    prob_best = np.bincount(samples.argmax(axis=1), minlength=s.size) / draws
    loss = (best - samples).mean(axis=0)
    tail = (1 - credibility) / 2
    return BayesianResult(
        posterior_mean=tuple((a_post / (a_post + b_post)).tolist()),
        credible_low=tuple(stats.beta.ppf(tail, a_post, b_post).tolist()),
        credible_high=tuple(stats.beta.ppf(1 - tail, a_post, b_post).tolist()),
        prob_best=tuple(prob_best.tolist()),
        expected_loss=tuple(loss.tolist()),
    )


# --------------------------------------------------------------------------- power


def _two_prop_stds(p_control: float, effect: float, ratio: float) -> tuple[float, float]:
    """Per-control-observation standard deviations of ``p_t - p_c`` under H0 (pooled) and H1 (unpooled)."""
    p_t = p_control + effect
    pooled = (p_control + ratio * p_t) / (1 + ratio)
    std_null = math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio))
    std_alt = math.sqrt(p_control * (1 - p_control) + p_t * (1 - p_t) / ratio)
    return std_null, std_alt


def _check_power_args(p_control: float, minimum_detectable_effect: float, alpha: float, ratio: float) -> None:
    _check_open_unit("p_control", p_control)
    _check_open_unit("alpha", alpha)
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
    power = _check_open_unit("power", power)
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


# --------------------------------------------------------------------------- sequential (mSPRT)


def _msprt_log_lr(effect: NDArray[np.float64], variance: NDArray[np.float64], tau2: float) -> NDArray[np.float64]:
    """Log mixture likelihood ratio of N(effect | theta, V) against theta=0 with theta ~ N(0, tau2).

    Closed form (Johari et al. 2017): ``0.5*log(V/(V+tau2)) + tau2*effect^2 / (2V(V+tau2))``. With no
    variance yet (no events in either arm) there is no evidence: log-LR 0.
    """
    safe = np.where(variance > 0, variance, 1.0)
    log_lr = 0.5 * np.log(safe / (safe + tau2)) + tau2 * effect**2 / (2 * safe * (safe + tau2))
    return np.where(variance > 0, log_lr, 0.0)


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
    if not tau2 > 0:
        raise ValueError(f"tau2 must be positive, got {tau2}")
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
    a few hundred observations per arm before its guarantee is tight.
    """

    def __init__(self, alpha: float = 0.05, tau2: float = 1e-3) -> None:
        self.alpha = _check_open_unit("alpha", alpha)
        if not tau2 > 0 or not math.isfinite(tau2):
            raise ValueError(f"tau2 must be positive, got {tau2}")
        self.tau2 = float(tau2)
        self._p_value = 1.0
        self._looks = 0
        self._last_trials = (0.0, 0.0)
        self._direction: Literal["b_higher", "b_lower"] | None = None

    @property
    def p_value(self) -> float:
        return self._p_value

    def update(self, successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> SequentialDecision:
        """Record cumulative two-proportion counts (they must not shrink) and return the decision so far."""
        s, n = _check_counts([successes_a, successes_b], [trials_a, trials_b], names=("successes_a/b", "trials_a/b"))
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
        decision: Literal["continue", "reject"] = "reject" if self._p_value <= self.alpha else "continue"
        return SequentialDecision(decision, self._direction, self._p_value, log_lr, effect, self._looks)


# --------------------------------------------------------------------------- A/B/n verdict


def compare_variants(
    successes: ArrayLike,
    trials: ArrayLike,
    alpha: float = 0.05,
    min_detectable_effect: float = 0.01,
    power: float = 0.8,
    names: Sequence[str] | None = None,
    draws: int = 100_000,
    seed: int = 0,
) -> Verdict:
    """Compare k >= 2 variants (index 0 is the control) and say whether one can be declared the winner.

    Each variant gets a pooled two-proportion z-test against the control, Holm-corrected across variants, plus
    a Beta(1, 1) probability to be best. A winner must (i) differ significantly from the control in its favour
    (or, for the control, beat every variant) and (ii) be best with posterior probability >= 1 - alpha, so it
    is also separated from the other variants. Otherwise the verdict reports how many more samples per
    variant a Bonferroni-level (alpha / (k-1)) test needs to detect an absolute ``min_detectable_effect`` at
    the control's observed rate with the requested power; Bonferroni is a conservative stand-in for Holm.
    """
    alpha = _check_open_unit("alpha", alpha)
    power = _check_open_unit("power", power)
    s, n = _check_counts(successes, trials, min_len=2)
    k = s.size
    labels = [str(x) for x in names] if names is not None else [f"variant_{i}" for i in range(k)]
    if len(labels) != k:
        raise ValueError(f"names has {len(labels)} entries but there are {k} variants")
    if not min_detectable_effect > 0:
        raise ValueError(f"min_detectable_effect must be positive, got {min_detectable_effect}")

    _, p, effect, lo, hi = _z_vs_control(s[0], n[0], s[1:], n[1:], 1 - alpha)
    holm = holm_correction(p, alpha)
    bayes = beta_binomial_comparison(s, n, draws=draws, seed=seed)
    rates = s / n
    effects = np.concatenate([[0.0], effect])
    bounds = np.concatenate([[[0.0, 0.0]], np.column_stack([lo, hi])])
    raw_p = (1.0, *p.tolist())
    adjusted = (1.0, *holm.adjusted)
    significant = (False, *holm.reject)
    rows = [
        VariantComparison(
            index=j,
            name=labels[j],
            trials=int(n[j]),
            rate=float(rates[j]),
            effect=float(effects[j]),
            ci_low=float(bounds[j, 0]),
            ci_high=float(bounds[j, 1]),
            p_value=raw_p[j],
            adjusted_p_value=adjusted[j],
            significant=significant[j],
            prob_best=bayes.prob_best[j],
            expected_loss=bayes.expected_loss[j],
        )
        for j in range(k)
    ]

    better = [r for r in rows[1:] if r.significant and r.effect > 0]
    control_wins = all(r.significant and r.effect < 0 for r in rows[1:])
    candidates = [rows[0]] if control_wins else better
    top = max(rows, key=lambda r: r.prob_best)
    if candidates and top in candidates and top.prob_best >= 1 - alpha:
        why = "beats every variant" if top.index == 0 else f"beats {labels[0]} by {top.effect:+.4f}"
        reason = f"{top.name} {why} (Holm-adjusted, alpha={alpha}) and is best with probability {top.prob_best:.3f}"
        return Verdict("winner", top.name, reason, 0, 0, tuple(rows))

    p_control = float(np.clip(rates[0], 1e-6, 1 - 1e-6))
    lift = min_detectable_effect if p_control + min_detectable_effect < 1 else -min_detectable_effect
    required = sample_size_two_proportions(p_control, lift, alpha / max(k - 1, 1), power).n_control
    additional = max(0, required - int(n.min()))
    if better:
        status = (
            f"{', '.join(r.name for r in better)} beat {labels[0]} but none is best with probability >= {1 - alpha}"
        )
    else:
        status = f"no variant differs from {labels[0]} after Holm correction"
    if additional > 0:
        reason = f"{status}; about {additional} more samples per variant are needed to detect {min_detectable_effect}"
        return Verdict("continue", None, reason, additional, required, tuple(rows))
    reason = f"{status} at the planned {required} samples per variant (effect {min_detectable_effect}, power {power})"
    return Verdict("no_winner", None, reason, 0, required, tuple(rows))
