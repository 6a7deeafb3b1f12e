"""The canary controller: ramp a version's share of a domain's traffic, judge it at every look, promote or roll back.

Everything it knows lives in the database (the `promotions` row) and the registry, and
every side effect is idempotent (an alias already there or an unchanged rollout is a
no-op), so a controller killed at any point and started again, by the same holder or by
another once the lease has run out, replays what is missing and ends where an
uninterrupted run would have.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import replace

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy import Engine

from domainflow.canary.analysis import Decision, decide
from domainflow.config import CanaryConfig
from domainflow.registry.aliases import CANARY, move_alias, promote, roll_back
from domainflow.registry.mlflow_registry import CHAMPION, current_alias_version
from domainflow.store.prediction_log import arm_stats, stratified_arm_stats
from domainflow.store.promotions import (
    ABORTED,
    PROMOTED,
    ROLLED_BACK,
    RUNNING,
    PromotionConflict,
    PromotionState,
    claim_promotion,
    end_promotion,
    heartbeat,
    mark_settled,
    read_promotion,
    save_state,
)
from domainflow.store.rollouts import CANARY_ARM, CHAMPION_ARM, Arm, set_rollout

OnDecision = Callable[[PromotionState, Decision], None]


class PromotionError(ValueError):
    """A promotion that cannot start as asked (no champion, version already serving); the message says why."""


def default_holder(actor: str) -> str:
    """Unique per process: a restarted process waits out the lease, a retry in the same process resumes at once."""
    return f"{actor} on {socket.gethostname()} pid {os.getpid()}"


def run_promotion(
    engine: Engine,
    tracking_uri: str,
    domain: str,
    model_name: str,
    version: str,
    plan: CanaryConfig,
    actor: str,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    on_decision: OnDecision | None = None,
    holder: str | None = None,
) -> PromotionState:
    """Canary `version` against the domain's champion through `plan.steps`; the final state says how it ended.

    Resumes the domain's promotion of `version` when one is running (same holder, or a dead
    holder's after `plan.lease_seconds`); a finished one is only completed if its side effects
    are missing, so a re-run after the end changes nothing. Raises PromotionConflict while
    another controller holds the domain.
    """
    version = str(version)
    holder = holder or default_holder(actor)
    previous = read_promotion(engine, domain)
    if previous is not None and previous.finished and not previous.settled and previous.version != version:
        # A controller died between ending the last promotion and applying it: finish that first.
        _settle(engine, tracking_uri, model_name, previous, actor, clock())
    if previous is not None and previous.version == version and not previous.restartable:
        champion = previous.champion_version  # resuming or re-running: the champion it started against
    else:
        champion = _startable_against(MlflowClient(tracking_uri), domain, model_name, version)
    state = claim_promotion(engine, domain, version, champion, holder, plan.lease_seconds, clock())
    if state.finished:
        return state if state.settled else _settle(engine, tracking_uri, model_name, state, actor, clock())

    move_alias(tracking_uri, engine, domain, model_name, CANARY, version,
               f"canary of v{version} against champion v{state.champion_version}", actor)  # fmt: skip
    try:
        state = _drive(engine, domain, model_name, plan, state, holder, actor, clock, sleep, on_decision)
    except PromotionConflict:
        # Ended under our feet (an operator's abort) or taken over: apply its end if it has one.
        latest = read_promotion(engine, domain)
        if latest is None or latest.version != version or not latest.finished:
            raise
        state = latest
    return _settle(engine, tracking_uri, model_name, state, actor, clock())


def _startable_against(client: MlflowClient, domain: str, model_name: str, version: str) -> str:
    """The champion a new canary of `version` is judged against; PromotionError when there is none to judge."""
    try:
        client.get_model_version(model_name, version)
    except MlflowException:
        raise PromotionError(f"{model_name} has no version {version}; register it before its canary") from None
    champion = current_alias_version(client, model_name, CHAMPION)
    if champion is None:
        raise PromotionError(
            f"{model_name} has no champion, so {domain} has nothing to canary v{version} against; "
            "a domain's first version becomes champion through the quality gates"
        )
    if champion == version:
        raise PromotionError(f"v{version} is already the champion of {model_name}; nothing to promote")
    return champion


def _drive(
    engine: Engine,
    domain: str,
    model_name: str,
    plan: CanaryConfig,
    state: PromotionState,
    holder: str,
    actor: str,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    on_decision: OnDecision | None,
) -> PromotionState:
    """Look, decide, record, until a decision ends the promotion; returns the saved final state."""
    while True:
        step = plan.steps[state.step]
        arms = [Arm(CHAMPION_ARM, state.champion_version, 1 - step.weight), Arm(CANARY_ARM, state.version, step.weight)]
        reason = f"canary step {state.step + 1}/{len(plan.steps)}: {step.weight * 100:g}% to v{state.version}"
        set_rollout(engine, domain, model_name, arms, reason, actor)
        # Each step's window starts where the previous one's advance was recorded.
        starts = [state.started_at, *(d["at"] for d in state.decisions if d["action"] == "advance")]
        strata = [(s.get(CHAMPION_ARM), s.get(CANARY_ARM)) for s in stratified_arm_stats(engine, domain, starts)]
        current = arm_stats(engine, domain, since=state.step_started_at)
        in_step = current.get(CANARY_ARM)
        now = clock()
        decision = decide(
            state.step,
            plan,
            current.get(CHAMPION_ARM),
            in_step,
            in_step.predictions if in_step else 0,
            now - state.step_started_at,
            strata=strata,
        )
        state = _record(state, decision, now)
        status = RUNNING
        if decision.action == "rollback":
            status = ROLLED_BACK
            state = replace(state, reason=decision.reason)
        elif decision.action == "advance" and state.step + 1 == len(plan.steps):
            status = PROMOTED
            state = replace(state, reason=decision.reason)
        elif decision.action == "advance":
            state = replace(state, step=state.step + 1, step_started_at=now)
        state = save_state(engine, domain, holder, state, status, now)
        if on_decision is not None:
            on_decision(state, decision)
        if state.finished:
            return state
        if decision.action == "hold":
            sleep(plan.poll_seconds)
            heartbeat(engine, domain, state.version, holder, clock())


def _record(state: PromotionState, decision: Decision, now: float) -> PromotionState:
    """Append the decision; a hold replaces the step's earlier hold, so a long bake keeps one record."""
    record = {"step": state.step, "action": decision.action, "reason": decision.reason,
              "figures": _finite(decision.figures), "at": now}  # fmt: skip
    decisions = list(state.decisions)
    last = decisions[-1] if decisions else None
    if decision.action == "hold" and last and last["action"] == "hold" and last["step"] == state.step:
        record["looks"] = int(last.get("looks", 1)) + 1
        decisions[-1] = record
    else:
        decisions.append(record)
    return replace(state, decisions=decisions)


def _finite(figures: dict) -> dict:
    """JSON columns refuse NaN and infinities on PostgreSQL; such figures are unknown."""
    return {name: None if isinstance(value, float) and not math.isfinite(value) else value
            for name, value in figures.items()}  # fmt: skip


def _settle(
    engine: Engine, tracking_uri: str, model_name: str, state: PromotionState, actor: str, now: float
) -> PromotionState:
    """Make the aliases and the rollout match the final status; each move is a no-op when already done."""
    domain, version = state.domain, state.version
    if state.status == PROMOTED:
        promote(tracking_uri, engine, domain, model_name, version, state.reason, actor)
        arms = [Arm(CHAMPION_ARM, version, 1.0)]
        set_rollout(engine, domain, model_name, arms, f"v{version}: {state.reason}", actor)
    elif state.status in (ROLLED_BACK, ABORTED):
        if state.champion_version is not None:
            arms = [Arm(CHAMPION_ARM, state.champion_version, 1.0)]
            set_rollout(engine, domain, model_name, arms, f"v{version}: {state.reason}", actor)
        roll_back(tracking_uri, engine, domain, model_name, version, state.reason, actor)
    return mark_settled(engine, domain, version, now)


def abort_promotion(
    engine: Engine,
    tracking_uri: str,
    domain: str,
    model_name: str,
    actor: str,
    reason: str = "",
    clock: Callable[[], float] = time.time,
) -> PromotionState:
    """Stop the domain's running promotion now: traffic back to the champion, the version loses its canary alias.

    Re-running it on an aborted promotion whose side effects are missing completes them.
    """
    current = read_promotion(engine, domain)
    if current is not None and current.status == ABORTED and not current.settled:
        return _settle(engine, tracking_uri, model_name, current, actor, clock())
    why = f"aborted by {actor}" + (f": {reason}" if reason else "")
    ended = end_promotion(engine, domain, ABORTED, why, actor, clock())
    return _settle(engine, tracking_uri, model_name, ended, actor, clock())


def roll_back_promotion(
    engine: Engine,
    tracking_uri: str,
    domain: str,
    model_name: str,
    actor: str,
    reason: str,
    clock: Callable[[], float] = time.time,
) -> PromotionState:
    """Roll the domain's running promotion back from outside its controller (monitoring's live quality gate).

    The controller notices at its next look that its promotion ended, and stops.
    """
    ended = end_promotion(engine, domain, ROLLED_BACK, reason, actor, clock())
    return _settle(engine, tracking_uri, model_name, ended, actor, clock())
