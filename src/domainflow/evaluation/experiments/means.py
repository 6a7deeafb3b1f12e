"""A/B/n verdict on a continuous metric (per-prediction log loss, latency) from per-arm summary statistics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from domainflow.evaluation.experiments.inputs import check_open_unit
from domainflow.evaluation.experiments.power import sample_size_two_means
from domainflow.evaluation.experiments.verdict import pick_winner, with_control_row


@dataclass(frozen=True)
class MeansComparison:
    """One variant's mean against the control's (the control's own row has no test)."""

    index: int
    name: str
    n: int
    mean: float
    effect: float  # mean - control mean, in the metric's units
    ci_low: float
    ci_high: float
    p_value: float
    adjusted_p_value: float
    significant: bool
    prob_best: float
    expected_loss: float  # metric units given up by shipping this arm, always >= 0


@dataclass(frozen=True)
class MeansVerdict:
    """Outcome of :func:`compare_variant_means`; the fields mean what they mean in :class:`Verdict`."""

    decision: Literal["winner", "continue", "no_winner"]
    winner: str | None
    reason: str
    additional_samples_per_variant: int
    required_samples_per_variant: int
    variants: tuple[MeansComparison, ...]


def _check_summaries(
    means: ArrayLike, variances: ArrayLike, counts: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per-arm means, sample variances and counts as float arrays, one entry per variant."""
    names = ("means", "variances", "counts")
    m, v, n = (np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (means, variances, counts))
    if m.ndim != 1 or v.ndim != 1 or n.ndim != 1:
        raise ValueError("means, variances and counts must be one-dimensional")
    if not m.size == v.size == n.size:
        raise ValueError(f"means, variances and counts have mismatched lengths ({m.size}, {v.size}, {n.size})")
    if m.size < 2:
        raise ValueError(f"means needs at least 2 variants, got {m.size}")
    for name, arr in zip(names, (m, v, n), strict=True):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
    if np.any(v < 0):
        raise ValueError(f"variances must be non-negative, got {v.tolist()}")
    if np.any(n < 2) or np.any(n != np.round(n)):
        raise ValueError(f"counts must be whole numbers >= 2 (a sample variance needs two), got {n.tolist()}")
    return m, v, n


def _welch_vs_control(
    m: NDArray[np.float64], v: NDArray[np.float64], n: NDArray[np.float64], labels: Sequence[str], confidence: float
) -> tuple[NDArray[np.float64], ...]:
    """Vectorized Welch t-tests and CIs of each arm's mean minus the control's, from summary statistics."""
    se2_arm = v / n
    se2 = se2_arm[0] + se2_arm[1:]
    if np.any(se2 == 0):
        flat = labels[1 + int(np.flatnonzero(se2 == 0)[0])]
        raise ValueError(f"variances of {labels[0]} and {flat} are both zero; the t statistic is undefined")
    dof = se2**2 / (se2_arm[0] ** 2 / (n[0] - 1) + se2_arm[1:] ** 2 / (n[1:] - 1))
    effect = m[1:] - m[0]
    se = np.sqrt(se2)
    p_value = 2 * stats.t.sf(np.abs(effect / se), dof)
    half = stats.t.isf((1 - confidence) / 2, dof) * se
    return p_value, effect, effect - half, effect + half


def _normal_posteriors(
    m: NDArray[np.float64], v: NDArray[np.float64], n: NDArray[np.float64], sign: float, draws: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Probability to be best and expected loss from N(mean, var/n) per arm; ``sign`` -1 makes lower better."""
    if draws < 1:
        raise ValueError(f"draws must be positive, got {draws}")
    rng = np.random.default_rng(seed)
    score = sign * rng.normal(m, np.sqrt(v / n), size=(int(draws), m.size))
    prob_best = np.bincount(score.argmax(axis=1), minlength=m.size) / draws
    return prob_best, (score.max(axis=1, keepdims=True) - score).mean(axis=0)


def compare_variant_means(
    means: ArrayLike,
    variances: ArrayLike,
    counts: ArrayLike,
    *,
    names: Sequence[str] | None = None,
    alpha: float = 0.05,
    min_detectable_effect: float = 0.01,
    power: float = 0.8,
    lower_is_better: bool = True,
    draws: int = 100_000,
    seed: int = 0,
) -> MeansVerdict:
    """Compare k >= 2 variants (index 0 is the control) on a continuous metric and say whether one wins.

    Takes each arm's mean, sample variance (ddof=1) and count, so a caller can aggregate a prediction log in
    SQL. Mirrors :func:`compare_variants`: each variant gets a Welch t-test against the control (arms rarely
    share a variance), Holm-corrected across variants, plus a probability to be best from the normal
    approximation N(mean, var/n) of each arm's mean. A winner must differ significantly from the control in
    its favour (or, for the control, beat every variant) and be best with probability >= 1 - alpha, and
    every arm must have the planned sample: what a Bonferroni-level (alpha / (k-1)) t-test needs to detect
    ``min_detectable_effect`` (in the metric's units; the default suits log loss in nats) at the pooled
    variance. Before that the verdict is "continue", saying how many more samples per variant are needed.
    ``lower_is_better`` (log loss, latency) decides which direction wins.
    """
    alpha = check_open_unit("alpha", alpha)
    power = check_open_unit("power", power)
    m, v, n = _check_summaries(means, variances, counts)
    k = m.size
    labels = [str(x) for x in names] if names is not None else [f"variant_{i}" for i in range(k)]
    if len(labels) != k:
        raise ValueError(f"names has {len(labels)} entries but there are {k} variants")
    if not min_detectable_effect > 0 or not math.isfinite(min_detectable_effect):
        raise ValueError(f"min_detectable_effect must be positive, got {min_detectable_effect}")

    p, effect, lo, hi = _welch_vs_control(m, v, n, labels, 1 - alpha)
    columns = with_control_row(p, effect, lo, hi, alpha)
    sign = -1.0 if lower_is_better else 1.0
    prob_best, loss = _normal_posteriors(m, v, n, sign, draws, seed)
    rows = [
        MeansComparison(
            index=j,
            name=labels[j],
            n=int(n[j]),
            mean=float(m[j]),
            effect=float(columns.effects[j]),
            ci_low=float(columns.bounds[j, 0]),
            ci_high=float(columns.bounds[j, 1]),
            p_value=columns.p_values[j],
            adjusted_p_value=columns.adjusted[j],
            significant=columns.significant[j],
            prob_best=float(prob_best[j]),
            expected_loss=float(loss[j]),
        )
        for j in range(k)
    ]

    direction = "lower" if lower_is_better else "higher"
    top, better = pick_winner(rows, alpha, sign)
    # The Welch tests are fixed-horizon: read before the planned sample, at every look, they name a
    # winner among equal arms far more often than alpha. So no winner is named before it.
    pooled = float(np.sum((n - 1) * v) / np.sum(n - 1))
    required = sample_size_two_means(pooled, min_detectable_effect, alpha / (k - 1), power).n_control
    additional = max(0, required - int(n.min()))
    if additional > 0:
        leading = f"{top.name} leads, but " if top is not None else ""
        reason = (
            f"{leading}a winner is named only at the planned {required} samples per variant (effect "
            f"{min_detectable_effect}, power {power}); about {additional} more are needed"
        )
        return MeansVerdict("continue", None, reason, additional, required, tuple(rows))
    if top is not None:
        why = "beats every variant" if top.index == 0 else f"beats {labels[0]} by {top.effect:+.4g}"
        reason = (
            f"{top.name} {why} ({direction} is better; Holm-adjusted, alpha={alpha}) "
            f"and is best with probability {top.prob_best:.3f}"
        )
        return MeansVerdict("winner", top.name, reason, 0, required, tuple(rows))
    if better:
        status = (
            f"{', '.join(r.name for r in better)} beat {labels[0]} but none is best with probability >= {1 - alpha}"
        )
    else:
        status = f"no variant is significantly {direction} than {labels[0]} after Holm correction"
    reason = f"{status} at the planned {required} samples per variant (effect {min_detectable_effect}, power {power})"
    return MeansVerdict("no_winner", None, reason, 0, required, tuple(rows))
