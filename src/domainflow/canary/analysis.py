"""One look at a canary: advance, hold or roll back, from the figures of both arms.

`decide` is pure: the same stats, step and clock give the same decision, so a controller
that resumes after a crash re-derives what the dead one would have done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from domainflow.config import CanaryConfig
from domainflow.evaluation.experiments import always_valid_interval
from domainflow.store.prediction_log import ArmStats

Action = Literal["advance", "hold", "rollback"]
Figure = float | int | None

# Before a step has its min_samples, errors alone roll the canary back once there are at least this
# many and they already exceed max_error_rate of the samples the step asks for: however well the
# rest go, the rate at min_samples would still breach the guardrail.
EARLY_MIN_ERRORS = 5


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    figures: dict[str, Figure] = field(default_factory=dict)


@dataclass(frozen=True)
class Quality:
    """Where label evidence stands: `worse` rolls back, `non_inferior` lets a quality step advance.

    Both answer one question, is the canary's log loss more than `quality_margin` above the
    champion's: `worse` when the interval lies wholly above the margin, `non_inferior` when wholly
    below it. A canary a little worse than the champion, within the margin, is not rolled back at one
    step for what let it advance at the one before.
    """

    worse: bool = False
    non_inferior: bool = False
    summary: str = ""
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


def decide(
    step_index: int,
    plan: CanaryConfig,
    champion: ArmStats | None,
    canary: ArmStats | None,
    step_canary_samples: int,
    step_elapsed_s: float,
    strata: Sequence[tuple[ArmStats | None, ArmStats | None]] | None = None,
) -> Decision:
    """Guardrails, then label quality, then the step's exit conditions, then the step's time/sample limits.

    `champion` and `canary` are what the guardrails judge (the controller passes the current step's
    figures: is the canary healthy at this share of traffic). Label quality pools the evidence of
    every step so far: `strata` holds (champion, canary) per step, compared within each step and
    combined (see `judge_quality`); without it, (champion, canary) is the one stratum.
    """
    if not 0 <= step_index < len(plan.steps):
        raise ValueError(f"step_index must lie in [0, {len(plan.steps)}), got {step_index}")
    step = plan.steps[step_index]
    figures = _figures(champion, canary, step_canary_samples, step_elapsed_s)
    at = _percent(step.weight)

    breach = _guardrail_breach(plan, step.min_samples, champion, canary, step_canary_samples)
    if breach:
        return Decision("rollback", f"roll back at {at}: {breach}", figures)

    quality = judge_quality(plan, strata if strata is not None else [(champion, canary)])
    figures.update(effect=quality.effect, ci_low=quality.ci_low, ci_high=quality.ci_high)
    if quality.worse:
        return Decision("rollback", f"roll back at {at}: {quality.summary}", figures)

    waiting = []
    if step_canary_samples < step.min_samples:
        waiting.append(f"{step.min_samples:,} canary predictions ({step_canary_samples:,} so far)")
    if step_elapsed_s < step.min_bake_seconds:
        waiting.append(f"the {step.min_bake_seconds:g} s bake time ({step_elapsed_s:.0f} s so far)")
    if step.require_quality and not quality.non_inferior:
        waiting.append(f"label evidence that the canary is no worse ({quality.summary})")
    if not waiting:
        target = (
            f"advance to {_percent(plan.steps[step_index + 1].weight)}"
            if step_index + 1 < len(plan.steps)
            else "promote"
        )
        seen = f"{step_canary_samples:,} canary predictions in {step_elapsed_s:.0f} s at {at}, no guardrail breached"
        evidence = f"; {quality.summary}" if quality.effect is not None else ""
        return Decision("advance", f"{target}: {seen}{evidence}", figures)

    hold = f"waiting for {' and '.join(waiting)}"
    if step_elapsed_s > plan.max_step_seconds or step_canary_samples > plan.max_step_samples:
        limit = (
            f"{step_elapsed_s:.0f} s"
            if step_elapsed_s > plan.max_step_seconds
            else f"{step_canary_samples:,} canary predictions"
        )
        return Decision("rollback", f"roll back at {at}: inconclusive after {limit}, still {hold}", figures)
    return Decision("hold", f"hold at {at}: {hold}", figures)


def _guardrail_breach(
    plan: CanaryConfig,
    min_samples: int,
    champion: ArmStats | None,
    canary: ArmStats | None,
    step_canary_samples: int,
) -> str:
    """Why the canary breaches a hard limit, or "" while it does not (or cannot be judged yet)."""
    if canary is None or canary.predictions == 0:
        return ""
    errors = f"error rate {canary.error_rate:.1%} ({canary.errors:,} of {canary.predictions:,} predictions)"
    if step_canary_samples < min_samples:
        allowed = plan.max_error_rate * (canary.predictions + min_samples - step_canary_samples)
        if canary.errors >= EARLY_MIN_ERRORS and canary.errors > allowed:
            return f"canary {errors} already exceeds the {plan.max_error_rate:.1%} limit"
        return ""
    if canary.error_rate > plan.max_error_rate:
        return f"canary {errors} exceeds the {plan.max_error_rate:.1%} limit"
    p95 = canary.p95_latency_ms
    if p95 is not None and p95 > plan.max_p95_latency_ms:
        return f"canary p95 latency {p95:.0f} ms exceeds the {plan.max_p95_latency_ms:g} ms limit"
    reference = champion.p95_latency_ms if champion is not None else None
    slower = p95 is not None and reference and p95 - reference > plan.latency_tolerance_ms
    if slower and p95 > plan.max_latency_ratio * reference:
        return (
            f"canary p95 latency {p95:.0f} ms is {p95 / reference:.1f}x the champion's {reference:.0f} ms "
            f"(limit {plan.max_latency_ratio:g}x)"
        )
    return ""


def judge_quality(plan: CanaryConfig, strata: Sequence[tuple[ArmStats | None, ArmStats | None]]) -> Quality:
    """Always-valid interval on canary minus champion mean log loss, once both arms have min_labelled labels.

    Within a step the weights are fixed and routing is by a hash of the request id, so both arms
    see the same hours; across steps the canary's share grows, and pooling the arms' raw means
    would compare its later, possibly harder, hours with the champion's earlier ones. So the
    difference is taken step by step and the steps' differences are combined by inverse variance
    (the fixed-effect estimator, a stratified comparison).
    """
    labelled = [0, 0]
    weights = weighted = 0.0
    for champion, canary in strata:
        labelled[0] += canary.labelled if canary else 0
        labelled[1] += champion.labelled if champion else 0
        if canary is None or champion is None or canary.loss_var is None or champion.loss_var is None:
            continue
        variance = canary.loss_var / canary.labelled + champion.loss_var / champion.labelled
        if variance > 0:
            weights += 1 / variance
            weighted += (canary.loss_mean - champion.loss_mean) / variance
    if min(labelled) < plan.min_labelled:
        return Quality(summary=f"labels {labelled[0]:,}/{plan.min_labelled:,} canary, "
                                f"{labelled[1]:,}/{plan.min_labelled:,} champion")  # fmt: skip
    if weights == 0:
        return Quality(summary="log loss has no spread yet")
    counted = f"{labelled[0]:,} canary/{labelled[1]:,} champion labels"
    return _against_margin(plan, weighted / weights, 1 / weights, counted, ("canary", "the champion"))


def judge_watch(
    plan: CanaryConfig,
    champion_losses: np.ndarray,
    replaced_losses: np.ndarray,
    names: tuple[str, str] = ("champion", "replaced version"),
) -> Quality:
    """Is the promoted champion worse than the version it replaced, on the same labelled predictions?

    Both versions scored the same rows (the champion served them; the replaced version scores their
    logged features), so the comparison is paired: the always-valid interval of the mean per-row
    log-loss difference (champion minus replaced), at the canary's alpha and tau, against the
    canary's one margin. `worse` (wholly above `quality_margin`) reverts the promotion: the same
    bound that would have rolled the canary back. `names` name the two in the summary (monitoring's
    canary guard judges a canary's rows against the champion's scores of them the same way).
    """
    champion_losses = np.asarray(champion_losses, dtype=float)
    replaced_losses = np.asarray(replaced_losses, dtype=float)
    if champion_losses.shape != replaced_losses.shape:
        raise ValueError(f"paired losses need one shape, got {champion_losses.shape} and {replaced_losses.shape}")
    rows = champion_losses.size
    if rows < plan.min_labelled:
        return Quality(summary=f"labels {rows:,}/{plan.min_labelled:,} since the promotion")
    differences = champion_losses - replaced_losses
    effect, variance = float(differences.mean()), float(differences.var(ddof=1)) / rows
    if variance == 0:
        return Quality(summary="log loss has no spread yet")
    counted = f"{rows:,} labelled predictions scored by both"
    return _against_margin(plan, effect, variance, counted, (f"the {names[0]}", f"the {names[1]}"))


def _against_margin(
    plan: CanaryConfig, effect: float, variance: float, counted: str, names: tuple[str, str]
) -> Quality:
    """The always-valid interval of `effect` (first named minus second named log loss) read against the one margin."""
    low, high = always_valid_interval(effect, variance, plan.tau**2, plan.alpha)
    interval = f"{effect:+.3f} [{low:+.3f}, {high:+.3f}] over {counted}"
    found = {"effect": effect, "ci_low": low, "ci_high": high}
    margin = f"the {plan.quality_margin:g} margin"
    if low > plan.quality_margin:
        return Quality(worse=True, summary=f"{names[0]}'s log loss is worse than {names[1]}'s by more than {margin}, "
                                           f"{interval}", **found)  # fmt: skip
    if high < plan.quality_margin:
        return Quality(non_inferior=True, summary=f"log loss {interval}, within {margin}", **found)
    return Quality(summary=f"log loss {interval}, upper bound not yet below {margin}", **found)


def _figures(
    champion: ArmStats | None, canary: ArmStats | None, step_canary_samples: int, step_elapsed_s: float
) -> dict[str, Figure]:
    figures: dict[str, Figure] = {"step_canary_samples": step_canary_samples, "step_elapsed_s": step_elapsed_s}
    for name, stats in (("champion", champion), ("canary", canary)):
        figures[f"n_{name}"] = stats.predictions if stats else 0
        figures[f"error_rate_{name}"] = stats.error_rate if stats else None
        figures[f"p95_ms_{name}"] = stats.p95_latency_ms if stats else None
        figures[f"labelled_{name}"] = stats.labelled if stats else 0
        figures[f"loss_{name}"] = stats.loss_mean if stats else None
    return figures


def _percent(weight: float) -> str:
    return f"{weight * 100:g}%"
