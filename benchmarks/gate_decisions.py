"""How often the gates and the canary decide right, on simulated data whose truth is known, against the old rules.

    python benchmarks/gate_decisions.py [--seeds 200]

Each scenario draws labels from a known probability and two models whose quality is set by
construction, so the right decision is known: pass or fail for a gate, advance or roll back for
a canary. It prints, per scenario, the share of seeds each rule decided right:

- slice gate: Holm over the slices' lower confidence bounds (now) against the largest point
  drop above 0.05 (before). Seven carriers of 302-4,050 rows; models' logits correlate 0.5.
- calibration gate: the paired ECE difference against the reference (now) against an absolute
  ECE ceiling of 0.075 (before), on months whose delay rate moved or not.
- canary: rollback and advance on one margin (now) against rollback at "worse at all" (before),
  looking at 10 %, 50 % and 100 % of traffic with growing labels.
- canary guard: the canary against the champion arm (now) against the canary alone against
  the champion's test-month AUC and log loss minus 0.05 (before), at 200, 400, 800 labels.
- post-promotion watch: the promoted champion against the version it replaced on the same
  rows, its latest 7 days looked at daily for 30 days (now), against keeping whatever was
  promoted (before, the simplest alternative); the days until a revert are printed beside.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from domainflow.canary.analysis import decide, judge_quality, judge_watch
from domainflow.config import CanaryConfig, GateConfig, RolloutStep
from domainflow.evaluation.gates import GateReference, evaluate_gates
from domainflow.evaluation.metrics import expected_calibration_error
from domainflow.store.prediction_log import ArmStats

SLICE_ROWS = {"9E": 302, "MQ": 640, "AA": 900, "US": 1_300, "DL": 2_100, "B6": 3_300, "UA": 4_050}
OLD_SLICE_DROP, OLD_ECE_CEILING, OLD_GUARD_MARGIN = 0.05, 0.075, 0.05
GATES = GateConfig(bootstrap_resamples=200)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _slice_case(seed: int, effect: str) -> tuple[bool, bool, bool]:
    """(truth: should pass, passed now, passed before) for one pair of models on seven carriers."""
    rng = np.random.default_rng(seed)
    carrier = np.repeat(list(SLICE_ROWS), list(SLICE_ROWS.values()))
    signal = rng.normal(size=carrier.size)
    labels = (rng.random(carrier.size) < _sigmoid(1.2 * signal - 1.0)).astype(int)
    reference, candidate = (_sigmoid(signal + rng.normal(size=carrier.size)) for _ in range(2))
    on = carrier == "DL"
    if effect == "collapsed":  # no signal left on DL: a drop of about 0.2
        candidate[on] = rng.permutation(candidate[on])
    elif effect == "small drop":  # a little more noise on DL: a drop of about 0.02, within 0.05
        candidate[on] = _sigmoid(signal[on] + rng.normal(scale=1.25, size=on.sum()))
    verdict = evaluate_gates(labels, candidate, 0.7, GateReference("champion", "champion", reference),
                             pd.DataFrame({"carrier": carrier}), GATES)  # fmt: skip
    check = {c.name: c for c in verdict.checks}["slice_regression"]
    return effect != "collapsed", bool(check.passed), check.extras["worst_slice_auc_drop"] <= OLD_SLICE_DROP


def _calibration_case(seed: int, effect: str) -> tuple[bool, bool, bool]:
    rng = np.random.default_rng(seed)
    rows = 8_000
    signal = rng.normal(size=rows)
    moved = 0.15 if effect in ("moved month", "moved month, overconfident") else 0.0
    labels = (rng.random(rows) < np.clip(_sigmoid(2.0 * signal - 1.0) + moved, 0, 1)).astype(int)
    reference = _sigmoid(2.0 * (signal + rng.normal(scale=0.2, size=rows)) - 1.0)
    candidate = _sigmoid(2.0 * (signal + rng.normal(scale=0.2, size=rows)) - 1.0)
    if "overconfident" in effect:
        candidate = _sigmoid(3.0 * (2.0 * signal + rng.normal(scale=0.2, size=rows)) - 3.0)
    verdict = evaluate_gates(labels, candidate, 0.8, GateReference("champion", "champion", reference), None, GATES)
    check = {c.name: c for c in verdict.checks}["calibration"]
    return (
        "overconfident" not in effect,
        bool(check.passed),
        expected_calibration_error(labels, candidate) <= OLD_ECE_CEILING,
    )


PLAN = CanaryConfig(
    steps=[RolloutStep(weight=0.10, min_samples=500, require_quality=True),
           RolloutStep(weight=0.50, min_samples=1_000, require_quality=True),
           RolloutStep(weight=1.00, min_samples=100)],
    max_step_samples=200_000,
)  # fmt: skip


def _arm(variant: str, losses: np.ndarray) -> ArmStats:
    return ArmStats(variant, losses.size, 0, 5.0, losses.size, float(losses.mean()), float(losses.var(ddof=1)))


def _canary_case(seed: int, effect: float) -> tuple[bool, bool, bool]:
    """(truth: should be promoted, promoted now, promoted before): looks every 500 labels, step by step."""
    rng = np.random.default_rng(seed)

    def losses(n: int, shift: float) -> np.ndarray:  # per-row log loss, mean 0.5 + shift, variance about 0.3
        return rng.gamma(0.85, 0.5 / 0.85, n) + shift

    outcome = {}
    for rule in ("now", "before"):
        strata, step = [], 0
        while step < len(PLAN.steps):
            share = PLAN.steps[step].weight
            champion, canary = np.empty(0), np.empty(0)
            while True:
                canary = np.r_[canary, losses(500, effect)]
                champion = np.r_[champion, losses(max(int(500 * (1 - share) / share), 500), 0.0)]
                looked = [*strata, (_arm("champion", champion), _arm("canary", canary))]
                decision = decide(step, PLAN, looked[-1][0], looked[-1][1], canary.size, 0.0, strata=looked)
                if rule == "before" and decision.action != "rollback":
                    quality = judge_quality(PLAN, looked)
                    if quality.ci_low is not None and quality.ci_low > 0:
                        decision = type(decision)("rollback", "worse at all")
                if decision.action != "hold":
                    break
            if decision.action == "rollback":
                break
            strata.append(looked[-1])
            step += 1
        outcome[rule] = step == len(PLAN.steps)
    return effect < PLAN.quality_margin, outcome["now"], outcome["before"]


def _guard_case(seed: int, labels_seen: int) -> tuple[bool, bool, bool]:
    """(truth: keep the canary, kept now, kept before) for a canary identical to the champion."""
    rng = np.random.default_rng(seed)

    def arm(n: int) -> tuple[np.ndarray, np.ndarray]:
        signal = rng.normal(size=n)
        labels = (rng.random(n) < _sigmoid(signal - 1.0)).astype(int)
        return labels, _sigmoid(signal + rng.normal(scale=0.8, size=n) - 1.0)

    reference_labels, reference_scores = arm(20_000)  # the champion's test month
    champion, canary = arm(labels_seen), arm(labels_seen)

    def row_losses(labels, scores):
        return -np.log(np.where(labels == 1, scores, 1 - scores))

    strata = [(_arm("champion", row_losses(*champion)), _arm("canary", row_losses(*canary)))]
    kept_now = not judge_quality(PLAN.model_copy(update={"min_labelled": 200}), strata).worse
    reference_auc, reference_loss = (
        roc_auc_score(reference_labels, reference_scores),
        log_loss(reference_labels, reference_scores),
    )
    kept_before = (roc_auc_score(*canary) >= reference_auc - OLD_GUARD_MARGIN
                   and log_loss(*canary) <= reference_loss + OLD_GUARD_MARGIN)  # fmt: skip
    return True, kept_now, kept_before


WATCH_DAY_ROWS = 330  # one airport's flights a day


def _watch_case(seed: int, effect: float) -> tuple[bool, bool, bool, int | None]:
    """(truth: keep, kept now, kept before, the day it was reverted) for a champion `effect` nats worse."""
    rng = np.random.default_rng(seed)
    days = int(PLAN.watch_days)
    # Per-row log loss of the replaced version, and the champion's on the same rows: paired, correlated.
    replaced = rng.gamma(0.85, 0.5 / 0.85, (days, WATCH_DAY_ROWS))
    champion = replaced + effect + rng.normal(0.0, 0.25, replaced.shape)
    window = int(PLAN.watch_window_days)
    for day in range(days):
        recent = slice(max(day + 1 - window, 0), day + 1)
        if judge_watch(PLAN, champion[recent].ravel(), replaced[recent].ravel()).worse:
            return effect <= PLAN.quality_margin, False, True, day + 1
    return effect <= PLAN.quality_margin, True, True, None


def _table(title: str, rows: list[tuple[str, str, list[tuple[bool, bool, bool]]]]) -> None:
    print(f"\n{title}")
    print(f"{'scenario':<34} {'truth':<9} {'right now':>10} {'before':>8}")
    for scenario, truth, results in rows:
        now = np.mean([t == n for t, n, _ in results])
        before = np.mean([t == b for t, _, b in results])
        print(f"{scenario:<34} {truth:<9} {now:>10.1%} {before:>8.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    seeds = range(parser.parse_args().seeds)
    few = range(max(len(seeds) // 4, 10))

    _table("Slice gate (7 carriers, 302-4,050 rows)", [
        (effect, "pass" if effect != "collapsed" else "fail", [_slice_case(s, effect) for s in seeds])
        for effect in ("equally good", "small drop", "collapsed")
    ])  # fmt: skip
    _table("Calibration gate (8,000 test rows)", [
        (effect, "fail" if "overconfident" in effect else "pass", [_calibration_case(s, effect) for s in seeds])
        for effect in ("same month", "moved month", "moved month, overconfident")
    ])  # fmt: skip
    _table("Canary (10 % -> 50 % -> 100 %, margin 0.03 nats)", [
        (f"canary {effect:+.2f} nats", "promote" if effect < PLAN.quality_margin else "roll back",
         [_canary_case(s, effect) for s in few])
        for effect in (0.0, 0.01, 0.02, 0.06)
    ])  # fmt: skip
    watched = {effect: [_watch_case(s, effect) for s in seeds] for effect in (0.0, 0.02, 0.03, 0.06, 0.10)}
    _table(f"Post-promotion watch ({PLAN.watch_days:g} days, latest {PLAN.watch_window_days:g} days, "
           f"{WATCH_DAY_ROWS} rows a day)", [
        (f"champion {effect:+.2f} nats", "keep" if effect <= PLAN.quality_margin else "revert",
         [case[:3] for case in cases]) for effect, cases in watched.items()
    ])  # fmt: skip
    for effect, cases in watched.items():
        reverted = [case[3] for case in cases if case[3] is not None]
        if reverted:
            print(
                f"  champion {effect:+.2f} nats: reverted in {len(reverted)} of {len(cases)} seeds, "
                f"after {np.median(reverted):.0f} days (median), {max(reverted)} at most"
            )
    _table("Canary guard (a canary equal to the champion)", [
        (f"{n} labels", "keep", [_guard_case(s, n) for s in seeds]) for n in (200, 400, 800)
    ])  # fmt: skip


if __name__ == "__main__":
    main()
