"""A/B/n verdict: is there a winner, or how many more samples are needed to tell."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from domainflow.evaluation.experiments.bayesian import beta_binomial_comparison
from domainflow.evaluation.experiments.frequentist import holm_correction, z_tests_vs_control
from domainflow.evaluation.experiments.inputs import check_counts, check_open_unit
from domainflow.evaluation.experiments.power import sample_size_two_proportions


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


@dataclass(frozen=True)
class ControlColumns:
    """Per-arm test columns with the control's own row first (no test: effect 0, p-value 1)."""

    effects: NDArray[np.float64]
    bounds: NDArray[np.float64]
    p_values: tuple[float, ...]
    adjusted: tuple[float, ...]
    significant: tuple[bool, ...]


def with_control_row(p: NDArray[np.float64], effect, lo, hi, alpha: float) -> ControlColumns:
    """Holm-correct the variants' p-values against the control and prepend the control's row."""
    holm = holm_correction(p, alpha)
    return ControlColumns(
        effects=np.concatenate([[0.0], effect]),
        bounds=np.concatenate([[[0.0, 0.0]], np.column_stack([lo, hi])]),
        p_values=(1.0, *p.tolist()),
        adjusted=(1.0, *holm.adjusted),
        significant=(False, *holm.reject),
    )


def pick_winner(rows: Sequence, alpha: float, sign: float = 1.0) -> tuple[object | None, list]:
    """(winner, variants significantly better than the control); `sign` -1 when lower is better.

    A winner must differ significantly from the control in its favour (or, for the control, beat
    every variant) and be best with posterior probability >= 1 - alpha.
    """
    better = [r for r in rows[1:] if r.significant and sign * r.effect > 0]
    control_wins = all(r.significant and sign * r.effect < 0 for r in rows[1:])
    candidates = [rows[0]] if control_wins else better
    top = max(rows, key=lambda r: r.prob_best)
    winner = top if candidates and top in candidates and top.prob_best >= 1 - alpha else None
    return winner, better


def compare_variants(
    successes: ArrayLike,
    trials: ArrayLike,
    *,
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
    alpha = check_open_unit("alpha", alpha)
    power = check_open_unit("power", power)
    s, n = check_counts(successes, trials, min_len=2)
    k = s.size
    labels = [str(x) for x in names] if names is not None else [f"variant_{i}" for i in range(k)]
    if len(labels) != k:
        raise ValueError(f"names has {len(labels)} entries but there are {k} variants")
    if not min_detectable_effect > 0:
        raise ValueError(f"min_detectable_effect must be positive, got {min_detectable_effect}")

    _, p, effect, lo, hi = z_tests_vs_control(s[0], n[0], s[1:], n[1:], 1 - alpha)
    columns = with_control_row(p, effect, lo, hi, alpha)
    bayes = beta_binomial_comparison(s, n, draws=draws, seed=seed)
    rates = s / n
    rows = [
        VariantComparison(
            index=j,
            name=labels[j],
            trials=int(n[j]),
            rate=float(rates[j]),
            effect=float(columns.effects[j]),
            ci_low=float(columns.bounds[j, 0]),
            ci_high=float(columns.bounds[j, 1]),
            p_value=columns.p_values[j],
            adjusted_p_value=columns.adjusted[j],
            significant=columns.significant[j],
            prob_best=bayes.prob_best[j],
            expected_loss=bayes.expected_loss[j],
        )
        for j in range(k)
    ]

    top, better = pick_winner(rows, alpha)
    if top is not None:
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
