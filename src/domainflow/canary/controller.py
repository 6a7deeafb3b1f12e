"""The canary controller: ramp a version's share of a domain's traffic, judge it at every look, promote or roll back.

Everything it knows lives in the database (the `promotions` row) and the registry, and
every side effect is idempotent (an alias already there or an unchanged rollout is a
no-op), so a controller killed at any point and started again, by the same holder or by
another once the lease has run out, replays what is missing and ends where an
uninterrupted run would have.

It writes weights only while it holds the promotion and the rollout is at the revision it
last wrote (kept in the promotions row, so a restarted controller expects the same one). An
operator who changes the rollout (the admin API's PUT or rollback) ends the promotion with
the change; one who changes it some other way is found out at the controller's next write,
which then ends the promotion as theirs. Either way the operator's weights stand.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace

from mlflow import MlflowClient
from sqlalchemy.engine import Engine

from domainflow.canary.analysis import Decision, decide
from domainflow.canary.approval import ApprovalAnswer, judge_approval
from domainflow.config import CanaryConfig
from domainflow.registry.aliases import CANARY, move_alias, promote, record_approval, restore_champion, roll_back
from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    TAG,
    current_alias_version,
    version_exists,
    version_tags_of,
)
from domainflow.store.audit import AuditEntry, read_audit, record_audit
from domainflow.store.prediction_log import ArmStats, arm_stats, labels_by_key, stratified_arm_stats
from domainflow.store.promotions import (
    ABORTED,
    PROMOTED,
    REVERTED,
    ROLLED_BACK,
    RUNNING,
    PromotionConflict,
    PromotionState,
    claim_promotion,
    end_awaiting_approval,
    end_promotion,
    heartbeat,
    mark_settled,
    read_promotion,
    revert_promotion,
    save_state,
    write_canary_rollout,
)
from domainflow.store.rollouts import CANARY_ARM, CHAMPION_ARM, Arm, RolloutConflict, read_rollout, set_rollout

OnDecision = Callable[[PromotionState, Decision], None]


@dataclass(frozen=True)
class Clock:
    """Time as the controller sees it: injected, so a test (or a replay) runs a canary's hours in seconds."""

    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()


class PromotionError(ValueError):
    """A promotion that cannot start as asked (no champion, version already serving); the message says why."""


def default_holder(actor: str) -> str:
    """Unique per process: a restarted process waits out the lease, a retry in the same process resumes at once."""
    return f"{actor} on {socket.gethostname()} pid {os.getpid()}"


def run_promotion(
    model: DomainModel,
    version: str,
    plan: CanaryConfig,
    actor: str,
    clock: Clock = SYSTEM_CLOCK,
    on_decision: OnDecision | None = None,
    holder: str | None = None,
    *,
    approval_seconds: float | None = None,
) -> PromotionState:
    """Canary `version` against the domain's champion through `plan.steps`; the final state says how it ended.

    Resumes the domain's promotion of `version` when one is running (same holder, or a dead
    holder's after `plan.lease_seconds`); a finished one is only completed if its side effects
    are missing, so a re-run after the end changes nothing (an aborted one starts afresh once the
    version is `challenger` again). Raises PromotionConflict while another controller holds the domain.

    With `approval_seconds` (promotion.approval: manual), a canary that passes its last step is not
    promoted: the state comes back `awaiting_approval`, the canary still serving, and `settle_approval`
    ends it once a person answers or the time is up. A resumed promotion already waiting only waits.
    """
    version = str(version)
    holder = holder or default_holder(actor)
    engine, domain = model.engine, model.domain
    previous = read_promotion(engine, domain)
    if previous is not None and previous.finished and not previous.settled and previous.version != version:
        # A controller died between ending the last promotion and applying it: finish that first.
        _settle(model, previous, actor, clock.now())
    ended = previous is not None and previous.version == version and previous.restartable
    if ended and not _is_challenger(model, version):
        # Aborted, or ended by an operator: a retry of its controller must not start it again; only
        # `challenger` set on the version again does.
        return previous
    if previous is not None and previous.version == version and not previous.restartable:
        champion = previous.champion_version  # resuming or re-running: the champion it started against
    else:
        champion = _startable_against(model, version)
    state = claim_promotion(engine, domain, version, champion, holder, plan.lease_seconds, clock.now())
    if state.finished:
        return state if state.settled else _settle(model, state, actor, clock.now())
    if state.awaiting_approval:
        return state

    _record_plan_change(model, plan, version, actor)
    move_alias(model, CANARY, version, f"canary of v{version} against champion v{state.champion_version}", actor)
    try:
        state = _drive(model, plan, state, holder, actor, clock, on_decision, approval_seconds=approval_seconds)
    except PromotionConflict:
        # Ended under our feet (an operator's abort) or taken over: apply its end if it has one.
        latest = read_promotion(engine, domain)
        if latest is None or latest.version != version or not latest.finished:
            raise
        state = latest
    if state.awaiting_approval:
        return state
    return _settle(model, state, actor, clock.now())


def _record_plan_change(model: DomainModel, plan: CanaryConfig, version: str, actor: str) -> None:
    """A `rollout_config` row when the canary plan (steps, bakes, guardrails) differs from the one the domain's
    last canary ran under: the config a rollout follows changes in a file, and shows here when it takes effect."""
    after = plan.model_dump(mode="json")
    last = read_audit(model.engine, model.domain, limit=1, action="rollout_config")
    before = last[0].after if last else None
    if before != after:
        reason = f"v{version}'s canary runs under " + ("a changed plan" if before is not None else "the first plan")
        record_audit(model.engine, AuditEntry(domain=model.domain, action="rollout_config", subject="canary",
                                              before=before, after=after, reason=reason, actor=actor))  # fmt: skip


def _is_challenger(model: DomainModel, version: str) -> bool:
    return current_alias_version(model.client, model.name, CHALLENGER) == version


def _startable_against(model: DomainModel, version: str) -> str:
    """The champion a new canary of `version` is judged against; PromotionError when there is none to judge."""
    client: MlflowClient = model.client
    if not version_exists(client, model.name, version):
        raise PromotionError(f"{model.name} has no version {version}; register it before its canary")
    champion = current_alias_version(client, model.name, CHAMPION)
    if champion is None:
        raise PromotionError(
            f"{model.name} has no champion, so {model.domain} has nothing to canary v{version} against; "
            "a domain's first version becomes champion through the quality gates"
        )
    if champion == version:
        raise PromotionError(f"v{version} is already the champion of {model.name}; nothing to promote")
    return champion


def label_strata(engine: Engine, state: PromotionState) -> list[tuple[ArmStats | None, ArmStats | None]]:
    """(champion, canary) figures per step of a promotion so far: the evidence `judge_quality` pools.

    Each step's window starts where the previous one's advance was recorded.
    """
    starts = [state.started_at, *(d["at"] for d in state.decisions if d["action"] == "advance")]
    return [(s.get(CHAMPION_ARM), s.get(CANARY_ARM)) for s in stratified_arm_stats(engine, state.domain, starts)]


def _drive(
    model: DomainModel,
    plan: CanaryConfig,
    state: PromotionState,
    holder: str,
    actor: str,
    clock: Clock,
    on_decision: OnDecision | None,
    *,
    approval_seconds: float | None,
) -> PromotionState:
    """Look, decide, record, until a decision ends the promotion (or, with `approval_seconds`, passes the last
    step: it then awaits a person's approval); returns the saved state."""
    engine, domain = model.engine, model.domain
    while True:
        step = plan.steps[state.step]
        arms = [Arm(CHAMPION_ARM, state.champion_version, 1 - step.weight), Arm(CANARY_ARM, state.version, step.weight)]
        reason = f"canary step {state.step + 1}/{len(plan.steps)}: {step.weight * 100:g}% to v{state.version}"
        try:
            state = write_canary_rollout(engine, state, holder, model.name, arms, reason, actor, now=clock.now())
        except RolloutConflict:
            return _end_for_rollout_change(model, clock.now())
        strata = label_strata(engine, state)
        current = arm_stats(engine, domain, since=state.step_started_at)
        in_step = current.get(CANARY_ARM)
        now = clock.now()
        decision = decide(
            state.step,
            plan,
            current.get(CHAMPION_ARM),
            in_step,
            in_step.predictions if in_step else 0,
            now - state.step_started_at,
            strata=strata,
        )
        entry = _step_entry(plan, state, decision, actor, now)
        state = _record(state, decision, now, labels_by_key(engine, domain, since=state.started_at))
        status = RUNNING
        if decision.action == "rollback":
            status = ROLLED_BACK
            state = replace(state, reason=decision.reason)
        elif decision.action == "advance" and state.step + 1 == len(plan.steps) and approval_seconds is not None:
            state = replace(state, approval={"requested_at": now, "deadline": now + approval_seconds})
        elif decision.action == "advance" and state.step + 1 == len(plan.steps):
            status = PROMOTED
            state = replace(state, reason=decision.reason)
        elif decision.action == "advance":
            state = replace(state, step=state.step + 1, step_started_at=now)
        state = save_state(engine, domain, holder, state, status, now, audit=entry)
        if on_decision is not None:
            on_decision(state, decision)
        if state.finished or state.awaiting_approval:
            return state
        if decision.action == "hold":
            clock.sleep(plan.poll_seconds)
            heartbeat(engine, domain, state.version, holder, clock.now())


def _step_entry(
    plan: CanaryConfig, state: PromotionState, decision: Decision, actor: str, now: float
) -> AuditEntry | None:
    """The audit row of a decision that moves the canary, saved with it: `canary_step` for an advance (the
    last one promotes), `rollback` for a rollback. A hold has none: it repeats at every look."""
    if decision.action == "hold":
        return None
    before = {"step": state.step + 1, "weight": plan.steps[state.step].weight}
    if decision.action == "rollback":
        action, after = "rollback", {"status": ROLLED_BACK, "weight": 0.0}
    elif state.step + 1 == len(plan.steps):
        action, after = "canary_step", {"status": PROMOTED, "weight": 1.0}
    else:
        action, after = "canary_step", {"step": state.step + 2, "weight": plan.steps[state.step + 1].weight}
    return AuditEntry(domain=state.domain, action=action, subject=f"v{state.version}", before=before,
                      after={**after, "figures": _finite(decision.figures)}, reason=decision.reason, actor=actor,
                      at=now)  # fmt: skip


def _record(state: PromotionState, decision: Decision, now: float, labels: dict[str, int]) -> PromotionState:
    """Append the decision; a hold replaces the step's earlier hold, so a long bake keeps one record.

    `labels`: how many of the canary's labels (both arms, since it started) each API key sent, so a decision
    steered by one client's labels shows it.
    """
    record = {"step": state.step, "action": decision.action, "reason": decision.reason,
              "figures": _finite(decision.figures), "labels_by_key": labels, "at": now}  # fmt: skip
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


def _end_for_rollout_change(model: DomainModel, now: float) -> PromotionState:
    """Someone changed the rollout since the controller's last write, not through the admin API (which ends the
    promotion itself): the promotion ends as theirs, named from the audit log's entry for the change."""
    current = read_rollout(model.engine, model.domain)
    changes = read_audit(model.engine, model.domain, limit=1, action="weights")
    if current is not None and changes and changes[0].reason == current.reason:
        who, why = changes[0].actor, changes[0].reason
    else:
        who, why = "unknown", "the rollout was changed without an audit entry"
    reason = f"ended by operator {who}: {why}"
    return end_promotion(model.engine, model.domain, ABORTED, reason, who, now, by_operator=True)


def _settle(model: DomainModel, state: PromotionState, actor: str, now: float) -> PromotionState:
    """Make the aliases and the rollout match the final status; each move is a no-op when already done.

    An operator's weights stand: a promotion they ended only gives up its aliases, and the final
    rollout is written only over the controller's own last write.
    """
    engine, domain, version = model.engine, model.domain, state.version
    if state.ended_by_operator:
        roll_back(model, version, state.reason, actor)
    elif state.status == PROMOTED:
        promote(model, version, state.reason, actor)
        _final_rollout(model, state, Arm(CHAMPION_ARM, version, 1.0), actor)
    elif state.status == REVERTED:
        if state.champion_version is not None:
            restore_champion(model, state.champion_version, version, state.reason, actor)
            _final_rollout(model, state, Arm(CHAMPION_ARM, state.champion_version, 1.0), actor)
    elif state.status in (ROLLED_BACK, ABORTED):
        if state.champion_version is not None:
            _final_rollout(model, state, Arm(CHAMPION_ARM, state.champion_version, 1.0), actor)
        roll_back(model, version, state.reason, actor)
    return mark_settled(engine, domain, version, now)


def _final_rollout(model: DomainModel, state: PromotionState, arm: Arm, actor: str) -> None:
    """All traffic to `arm`, unless the rollout moved on since the controller last wrote it.

    Then it was this settling, run before (the controller died before recording it), or an operator
    changing the weights as the promotion ended: what is there stands, unless it still gives traffic
    to a version that was rolled back.
    """
    expected = state.rollout_revision
    if state.status != PROMOTED:
        current = read_rollout(model.engine, model.domain)
        if current is not None and any(a.version == state.version and a.weight > 0 for a in current.arms):
            expected = None
    reason = f"v{state.version}: {state.reason}"
    with suppress(RolloutConflict):
        set_rollout(model.engine, model.domain, model.name, [arm], reason, actor, expected)


def abort_promotion(model: DomainModel, actor: str, reason: str = "", clock: Clock = SYSTEM_CLOCK) -> PromotionState:
    """Stop the domain's running promotion now: traffic back to the champion, the version loses its canary alias.

    Re-running it on an aborted promotion whose side effects are missing completes them.
    """
    current = read_promotion(model.engine, model.domain)
    if current is not None and current.status == ABORTED and not current.settled:
        return _settle(model, current, actor, clock.now())
    why = f"aborted by {actor}" + (f": {reason}" if reason else "")
    ended = end_promotion(model.engine, model.domain, ABORTED, why, actor, clock.now())
    return _settle(model, ended, actor, clock.now())


def settle_approval(
    model: DomainModel, version: str, answer: ApprovalAnswer | None, actor: str, clock: Clock = SYSTEM_CLOCK
) -> PromotionState:
    """End the promotion of `version` that awaits approval as `answer` says: approved, it is promoted; rejected,
    or no answer (None: its time ran out), it is rolled back as a failed canary is. The approver and the reason
    go to the audit log and the version's tags; `actor` (the flow run) makes the moves.

    A promotion that ended meanwhile (an operator's abort, monitoring's rollback) stays as it ended; one
    ended by an earlier call whose moves are missing is completed.
    """
    version = str(version)
    current = read_promotion(model.engine, model.domain)
    if current is None or current.version != version:
        found = "none" if current is None else f"v{current.version}"
        raise PromotionError(f"{model.domain} has no promotion of v{version} to approve (its latest: {found})")
    if not current.awaiting_approval:
        if not current.finished:
            raise PromotionError(f"the canary of {model.domain} v{version} has not passed its last step yet")
        if current.settled:
            return current
        answered = (current.approval or {}).get("outcome")
        if answered and version_tags_of(model.client, model.name, version).get(f"{TAG}approval") != answered:
            # Ended by an earlier call that stopped before recording who answered.
            record_approval(model, version, {**current.approval, "action": current.decisions[-1]["action"]})
        return _settle(model, current, actor, clock.now())
    outcome = judge_approval(answer, current.approval, actor)
    try:
        ended = end_awaiting_approval(model.engine, model.domain, version, outcome.status, outcome.summary,
                                      answer=outcome.as_record(), now=clock.now())  # fmt: skip
    except PromotionConflict:
        latest = read_promotion(model.engine, model.domain)
        if latest is None or latest.version != version or not latest.finished:
            raise
        return latest if latest.settled else _settle(model, latest, actor, clock.now())
    record_approval(model, version, outcome.as_record())
    return _settle(model, ended, actor, clock.now())


def revert_promoted(
    model: DomainModel, version: str, actor: str, reason: str, clock: Clock = SYSTEM_CLOCK
) -> PromotionState:
    """Revert the domain's promotion of `version`: the version it replaced is champion again and takes all traffic.

    Re-running it on a reverted promotion whose moves are missing completes them.
    """
    current = read_promotion(model.engine, model.domain)
    if current is not None and current.version == version and current.status == REVERTED and not current.settled:
        return _settle(model, current, actor, clock.now())
    reverted = revert_promotion(model.engine, model.domain, version, reason, actor, clock.now())
    return _settle(model, reverted, actor, clock.now())


def roll_back_promotion(model: DomainModel, actor: str, reason: str, clock: Clock = SYSTEM_CLOCK) -> PromotionState:
    """Roll the domain's running promotion back from outside its controller (monitoring's live quality gate).

    The controller notices at its next look that its promotion ended, and stops.
    """
    ended = end_promotion(model.engine, model.domain, ROLLED_BACK, reason, actor, clock.now())
    return _settle(model, ended, actor, clock.now())
