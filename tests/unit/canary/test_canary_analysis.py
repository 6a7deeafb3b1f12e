from __future__ import annotations

import json

import numpy as np
import pytest

from domainflow.canary.analysis import decide, judge_watch
from domainflow.config import CanaryConfig, RolloutStep
from domainflow.store.prediction_log import ArmStats

PLAN = CanaryConfig(
    steps=[
        RolloutStep(weight=0.01, min_bake_seconds=30, min_samples=50),
        RolloutStep(weight=0.10, min_bake_seconds=60, min_samples=500, require_quality=True),
        RolloutStep(weight=1.00, min_bake_seconds=0, min_samples=0),
    ],
    max_step_seconds=600,
    max_step_samples=5_000,
    max_error_rate=0.01,
    max_p95_latency_ms=250,
    max_latency_ratio=2.0,
    quality_margin=0.03,
    alpha=0.05,
    tau=0.02,
    min_labelled=200,
)


def arm(variant, n, errors=0, p95=50.0, labelled=0, loss=None, var=None):
    return ArmStats(variant, n, errors, p95, labelled, loss, var)


CHAMPION = arm("champion", 100_000, errors=100, p95=50.0, labelled=100_000, loss=0.50, var=0.3)
# Enough labels on both arms for the interval to settle either way.
SAME_QUALITY = dict(labelled=20_000, loss=0.50, var=0.3)
WORSE_QUALITY = dict(labelled=2_000, loss=0.60, var=0.3)

CASES = {
    # id: (step, canary, step samples, step seconds, action, words in the reason)
    "error rate over the limit": (0, arm("canary", 100, errors=3), 60, 40, "rollback", "error rate 3.0%"),
    "errors already too many before min_samples": (
        0, arm("canary", 20, errors=6), 20, 5, "rollback", "already exceeds the 1.0% limit"),
    "a couple of early errors wait for the sample": (0, arm("canary", 20, errors=2), 20, 5, "hold", "50 canary"),
    "p95 over the absolute limit": (0, arm("canary", 60, p95=300.0), 60, 40, "rollback", "300 ms exceeds the 250"),
    "p95 over the ratio to the champion": (0, arm("canary", 60, p95=120.0), 60, 40, "rollback", "2.4x the champion"),
    "slow but too few samples to judge": (0, arm("canary", 10, p95=900.0), 10, 40, "hold", "50 canary predictions"),
    "log loss clearly worse": (1, arm("canary", 2_000, **WORSE_QUALITY), 600, 90, "rollback", "log loss is worse"),
    "worse quality rolls back even before the bake": (
        1, arm("canary", 2_000, **WORSE_QUALITY), 30, 5, "rollback", "log loss is worse"),
    "non-inferior advances a quality step": (
        1, arm("canary", 20_000, **SAME_QUALITY), 600, 90, "advance", "advance to 100%"),
    "quality step waits for labels": (
        1, arm("canary", 600, labelled=100, loss=0.5, var=0.3), 600, 90, "hold", "labels 100/200 canary"),
    "quality step waits for a tighter interval": (
        1, arm("canary", 600, labelled=300, loss=0.5, var=0.3), 600, 90, "hold", "upper bound not yet below"),
    "bake time not over": (0, arm("canary", 60), 60, 10, "hold", "the 30 s bake time (10 s so far)"),
    "first step advances on samples and bake alone": (0, arm("canary", 60), 60, 31, "advance", "advance to 10%"),
    "last step promotes": (2, arm("canary", 30_000, **SAME_QUALITY), 0, 0, "advance", "promote"),
    "no canary traffic yet": (0, None, 0, 0, "hold", "0 so far"),
    "inconclusive after max_step_seconds": (
        1, arm("canary", 600, labelled=300, loss=0.5, var=0.3), 600, 601, "rollback", "inconclusive after 601 s"),
    "inconclusive after max_step_samples": (
        1, arm("canary", 6_000, labelled=300, loss=0.5, var=0.3), 5_001, 90, "rollback",
        "inconclusive after 5,001 canary predictions"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_rule_decides_with_a_readable_reason(case):
    step, canary, samples, elapsed, action, words = case
    decision = decide(step, PLAN, CHAMPION, canary, samples, elapsed)
    assert decision.action == action, decision.reason
    assert words in decision.reason


def test_reasons_name_the_step_and_the_evidence():
    advance = decide(1, PLAN, CHAMPION, arm("canary", 20_000, **SAME_QUALITY), 600, 90)
    assert advance.reason.startswith("advance to 100%: 600 canary predictions in 90 s at 10%")
    assert "log loss +0.000 [" in advance.reason and "within the 0.03 margin" in advance.reason
    worse = decide(1, PLAN, CHAMPION, arm("canary", 2_000, **WORSE_QUALITY), 600, 90)
    assert worse.reason.startswith(
        "roll back at 10%: canary's log loss is worse than the champion's by more than the 0.03 margin, +0.100 ["
    )
    assert worse.figures["ci_low"] > 0.03 and worse.figures["effect"] == pytest.approx(0.1)


def test_figures_carry_both_arms_and_serialize():
    decision = decide(1, PLAN, CHAMPION, arm("canary", 20_000, errors=4, p95=60.0, **SAME_QUALITY), 600, 90)
    figures = decision.figures
    assert (figures["n_champion"], figures["n_canary"], figures["labelled_canary"]) == (100_000, 20_000, 20_000)
    assert figures["error_rate_canary"] == pytest.approx(4 / 20_000)
    assert (figures["p95_ms_champion"], figures["p95_ms_canary"]) == (50.0, 60.0)
    assert figures["ci_low"] < figures["effect"] < figures["ci_high"] < PLAN.quality_margin
    assert json.loads(json.dumps(figures, allow_nan=False)) == figures
    empty = decide(0, PLAN, None, None, 0, 0).figures
    assert empty["n_canary"] == 0 and empty["effect"] is None and empty["p95_ms_champion"] is None


def test_the_same_inputs_give_the_same_decision():
    canary = arm("canary", 600, labelled=300, loss=0.52, var=0.3)
    assert decide(1, PLAN, CHAMPION, canary, 600, 90) == decide(1, PLAN, CHAMPION, canary, 600, 90)


def test_a_step_outside_the_plan_is_refused():
    with pytest.raises(ValueError, match=r"step_index must lie in \[0, 3\), got 3"):
        decide(3, PLAN, CHAMPION, None, 0, 0)


def test_a_canary_a_few_milliseconds_slower_is_not_rolled_back_for_the_ratio():
    fast_champion = arm("champion", 100_000, p95=2.0, labelled=100_000, loss=0.50, var=0.3)
    noise = decide(0, PLAN, fast_champion, arm("canary", 60, p95=6.0), 60, 40)
    slow = decide(0, PLAN, fast_champion, arm("canary", 60, p95=30.0), 60, 40)
    assert noise.action == "advance"
    assert slow.action == "rollback" and "15.0x the champion" in slow.reason


def test_rollback_and_advance_judge_one_margin():
    """Issue 16: a canary 0.01 nats worse (within the 0.03 margin) advanced at 10 % and was rolled back at 50 %.

    Rollback asked "is it worse at all", advance "is it within the margin": more labels at a later
    step made the same canary fail the first after it passed the second.
    """
    champion = arm("champion", 200_000, labelled=200_000, loss=0.50, var=0.3)
    slightly_worse = dict(loss=0.51, var=0.3)
    half = RolloutStep(weight=0.5, min_samples=500, require_quality=True)
    plan = PLAN.model_copy(update={"steps": [*PLAN.steps[:2], half, PLAN.steps[2]]})

    at_10 = decide(1, plan, champion, arm("canary", 20_000, labelled=20_000, **slightly_worse), 5_000, 90)
    at_50 = decide(2, plan, champion, arm("canary", 200_000, labelled=200_000, **slightly_worse), 5_000, 90)

    assert at_10.action == "advance", at_10.reason
    assert at_50.action == "advance", at_50.reason
    # Worse by more than the margin still rolls back, on the same evidence.
    clearly_worse = decide(2, plan, champion, arm("canary", 200_000, labelled=200_000, loss=0.55, var=0.3), 5_000, 90)
    assert clearly_worse.action == "rollback" and "more than the 0.03 margin" in clearly_worse.reason


def _watched(seed: int, effect: float, rows: int = 2_300) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log losses of a replaced version and of its successor on the same rows, `effect` nats apart."""
    rng = np.random.default_rng(seed)
    replaced = rng.gamma(0.85, 0.5 / 0.85, rows)
    return replaced + effect + rng.normal(0.0, 0.25, rows), replaced


def test_the_watch_keeps_a_champion_within_the_margin_and_reverts_one_beyond_it_over_many_seeds():
    """The watch's paired test on the canary's one margin: no revert at +0.00 or +0.02, a revert at +0.10."""
    effects = (0.0, 0.02, 0.1)
    decided = {effect: [judge_watch(PLAN, *_watched(seed, effect)) for seed in range(50)] for effect in effects}
    assert not any(q.worse for q in decided[0.0] + decided[0.02])
    assert all(q.worse and q.ci_low > PLAN.quality_margin for q in decided[0.1])
    assert all(q.non_inferior for q in decided[0.0])


def test_the_watch_needs_min_labelled_paired_rows():
    few = judge_watch(PLAN, *_watched(0, 0.5, rows=PLAN.min_labelled - 1))
    assert (few.worse, few.effect) == (False, None) and "labels 199/200" in few.summary
    with pytest.raises(ValueError, match="one shape"):
        judge_watch(PLAN, np.zeros(300), np.zeros(299))
