"""A domain's promotion as persisted in the `promotions` table: who drives it, which step, every decision.

One row per domain. A controller claims the row, then heartbeats; every write is a
conditional UPDATE (or an INSERT racing on the primary key), so of two processes
racing for a domain exactly one wins, and a controller that lost its claim finds out
at its next write instead of acting on a promotion it no longer owns.

The controller's weights are written in the same transaction as a check that it still
holds the promotion and that the rollout is at the revision it last wrote, which the row
keeps; an operator's change of the rollout ends the running promotion in the same
transaction as the change. So neither can undo the other: a controller that finds the
rollout changed under it stops, and an operator's rollback stands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from domainflow.store.audit import AuditEntry, append_audit
from domainflow.store.rollouts import Arm, Rollout, read_rollout, write_rollout
from domainflow.store.schema import promotions

RUNNING = "running"
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
ABORTED = "aborted"
# Promoted, then reverted by the post-promotion watch: the version it replaced serves again.
REVERTED = "reverted"
FINAL = frozenset({PROMOTED, ROLLED_BACK, ABORTED, REVERTED})
# The decision that records an operator's change of the rollout ending the promotion.
OPERATOR = "operator"

# Claims lost to a concurrent writer are re-read and re-judged this many times before giving up.
_CLAIM_ATTEMPTS = 5


class PromotionConflict(RuntimeError):
    """Another controller holds the domain's promotion, or this one lost its claim; the message says who."""


@dataclass(frozen=True)
class PromotionState:
    domain: str
    version: str
    champion_version: str | None
    status: str  # running | promoted | rolled_back | aborted | reverted
    step: int  # index into CanaryConfig.steps
    step_started_at: float
    started_at: float
    # {"step", "action", "reason", "figures", "at"} per advance/rollback (or an operator's "abort", or the
    # "operator" change of the rollout that ended it), plus at most one "hold" per step, replaced at each
    # look (with "looks", its count).
    decisions: list[dict[str, Any]] = field(default_factory=list)
    holder: str = ""
    heartbeat_at: float = 0.0
    # Final status reached and its side effects (aliases, rollout) all applied.
    settled: bool = False
    reason: str = ""  # why it ended, once final
    # The rollout's revision as the controller last wrote it (or found it when the promotion started):
    # its next write expects it. None on rows written before it was kept.
    rollout_revision: int | None = None
    # Set when the canary passed its last step and a person must approve it (promotion.approval: manual):
    # {"requested_at", "deadline"}; the answer adds {"outcome": approved | rejected | timed_out, "by", "reason", "at"}.
    approval: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    @property
    def ended_by_operator(self) -> bool:
        """An operator changed the rollout while it ran: their weights stand; settling only takes its aliases away."""
        return self.status == ABORTED and bool(self.decisions) and self.decisions[-1]["action"] == OPERATOR

    @property
    def awaiting_approval(self) -> bool:
        """The canary passed every step and waits, still serving, for a person to approve or reject it."""
        return self.status == RUNNING and self.approval is not None and "outcome" not in self.approval

    @property
    def restartable(self) -> bool:
        """An abort stopped it, not a verdict: the same version may be promoted again."""
        return self.status == ABORTED and self.settled


def _payload(state: PromotionState) -> dict[str, Any]:
    return {
        "step": state.step,
        "step_started_at": state.step_started_at,
        "started_at": state.started_at,
        "decisions": list(state.decisions),
        "settled": state.settled,
        "reason": state.reason,
        "rollout_revision": state.rollout_revision,
        "approval": state.approval,
    }


def _from_row(row) -> PromotionState:
    saved = row.state
    return PromotionState(
        domain=row.domain,
        version=row.version,
        champion_version=row.champion_version,
        status=row.status,
        step=int(saved["step"]),
        step_started_at=float(saved["step_started_at"]),
        started_at=float(saved["started_at"]),
        decisions=list(saved.get("decisions", [])),
        holder=row.holder,
        heartbeat_at=float(row.heartbeat_at),
        settled=bool(saved.get("settled", False)),
        reason=str(saved.get("reason", "")),
        rollout_revision=saved.get("rollout_revision"),
        approval=saved.get("approval"),
    )


def read_promotion(engine: Engine, domain: str) -> PromotionState | None:
    with engine.connect() as connection:
        row = connection.execute(select(promotions).where(promotions.c.domain == domain)).first()
    return None if row is None else _from_row(row)


def _since(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def claim_promotion(
    engine: Engine,
    domain: str,
    version: str,
    champion_version: str | None,
    holder: str,
    lease_seconds: float,
    now: float,
) -> PromotionState:
    """Start, resume or take over the domain's promotion of `version`, or raise PromotionConflict.

    A finished promotion of the same version comes back as it is (a re-run reports the earlier
    result), unless it was aborted (and that is applied): an operator may start it again. A
    finished one of another version is replaced by a fresh running one. A running one
    of this version is resumed by its holder, or taken over once its heartbeat is older than
    `lease_seconds` (its controller died); anyone else gets a PromotionConflict.
    """
    for _ in range(_CLAIM_ATTEMPTS):
        current = read_promotion(engine, domain)
        if current is not None and current.version == version and current.finished and not current.restartable:
            return current
        if current is not None and current.status == RUNNING:
            stale = now - current.heartbeat_at > lease_seconds
            if current.version != version and current.awaiting_approval:
                deadline = _since(current.approval["deadline"])
                raise PromotionConflict(
                    f"{domain}'s canary of v{current.version} awaits approval until {deadline}; approve or reject "
                    f"it first (domainflow approve|reject {domain} --version {current.version} --reason ...)"
                )
            if current.version != version:
                raise PromotionConflict(
                    f"{domain} is already rolling out v{current.version} (holder {current.holder}, "
                    f"heartbeat {_since(current.heartbeat_at)}); wait for it or abort it"
                )
            # A promotion awaiting approval has no controller to heartbeat it: whoever resumes it only waits.
            if current.holder != holder and not stale and not current.awaiting_approval:
                raise PromotionConflict(
                    f"the promotion of {domain} v{version} is held by {current.holder} since "
                    f"{_since(current.started_at)} (last heartbeat {_since(current.heartbeat_at)}); "
                    f"it can be taken over {lease_seconds:g} s after its last heartbeat"
                )
            claimed = replace(current, holder=holder, heartbeat_at=now)
            if _compare_and_set(engine, current, claimed, now):
                return claimed
            continue
        serving = read_rollout(engine, domain)
        fresh = PromotionState(domain, version, champion_version, RUNNING, 0, now, now, [], holder, now,
                               rollout_revision=serving.revision if serving else 0)  # fmt: skip
        if current is None:
            if _insert(engine, fresh, now):
                return fresh
        elif _compare_and_set(engine, current, fresh, now):
            return fresh
    raise PromotionConflict(f"the promotion of {domain} kept changing while {holder} tried to claim it; try again")


def _insert(engine: Engine, state: PromotionState, now: float) -> bool:
    try:
        with engine.begin() as connection:
            connection.execute(insert(promotions).values(**_columns(state, now)))
    except IntegrityError:  # another process inserted the row first
        return False
    return True


def _columns(state: PromotionState, now: float) -> dict[str, Any]:
    return {
        "domain": state.domain,
        "version": state.version,
        "champion_version": state.champion_version,
        "status": state.status,
        "holder": state.holder,
        "heartbeat_at": state.heartbeat_at,
        "state": _payload(state),
        "updated_at": now,
    }


def _compare_and_set(
    engine: Engine, expected: PromotionState, new: PromotionState, now: float, audit: AuditEntry | None = None
) -> bool:
    """Write `new` only if the row is still exactly the one `expected` was read from; `audit` with it."""
    with engine.begin() as connection:
        changed = connection.execute(update(promotions).where(*_unchanged(expected)).values(**_columns(new, now)))
        if changed.rowcount == 1 and audit is not None:
            append_audit(connection, audit)
    return changed.rowcount == 1


def _unchanged(expected: PromotionState) -> tuple:
    return (
        promotions.c.domain == expected.domain,
        promotions.c.version == expected.version,
        promotions.c.status == expected.status,
        promotions.c.holder == expected.holder,
        promotions.c.heartbeat_at == expected.heartbeat_at,
    )


def _held(domain: str, version: str, holder: str) -> tuple:
    return (
        promotions.c.domain == domain,
        promotions.c.version == version,
        promotions.c.holder == holder,
        promotions.c.status == RUNNING,
    )


def save_state(
    engine: Engine,
    domain: str,
    holder: str,
    state: PromotionState,
    status: str,
    now: float,
    *,
    audit: AuditEntry | None = None,
) -> PromotionState:
    """Persist `state` with `status` and a fresh heartbeat, if `holder` still holds the running promotion.

    `audit`: the row of the decision saved (a step, a rollback), written in the same transaction: a
    controller resumed after a crash neither loses it nor writes it twice.
    """
    saved = replace(state, status=status, holder=holder, heartbeat_at=now)
    _update_held(engine, domain, state.version, holder, audit, status=status, heartbeat_at=now,
                 state=_payload(saved), updated_at=now)  # fmt: skip
    return saved


def heartbeat(engine: Engine, domain: str, version: str, holder: str, now: float) -> None:
    """Renew `holder`'s lease on the running promotion; PromotionConflict if it was lost."""
    _update_held(engine, domain, version, holder, None, heartbeat_at=now, updated_at=now)


def _update_held(
    engine: Engine, domain: str, version: str, holder: str, audit: AuditEntry | None, **values: Any
) -> None:
    """Write `values` (and `audit`) only while `holder` holds the running promotion of `version`; else
    PromotionConflict."""
    with engine.begin() as connection:
        changed = connection.execute(update(promotions).where(*_held(domain, version, holder)).values(**values))
        if changed.rowcount == 1 and audit is not None:
            append_audit(connection, audit)
    if changed.rowcount != 1:
        raise PromotionConflict(_lost(engine, domain, version, holder))


def write_canary_rollout(
    engine: Engine,
    state: PromotionState,
    holder: str,
    model_name: str,
    arms: list[Arm],
    reason: str,
    actor: str,
    *,
    now: float,
) -> PromotionState:
    """The controller's weights for its step, written only while `holder` holds the running promotion and
    the rollout is at `state.rollout_revision`; saved with the revision written, in one transaction.

    PromotionConflict when the promotion was lost (ended, taken over); RolloutConflict when someone
    else changed the rollout since the controller's last write. Either way nothing is written.
    """
    held = _held(state.domain, state.version, holder)
    with engine.begin() as connection:
        # The promotion's row first (on PostgreSQL it is then locked), as override_rollout takes them.
        holds = connection.execute(update(promotions).where(*held).values(heartbeat_at=now, updated_at=now))
        if holds.rowcount == 1:
            rollout = write_rollout(connection, state.domain, model_name, arms, reason, actor, state.rollout_revision)
            saved = replace(state, holder=holder, heartbeat_at=now, rollout_revision=rollout.revision)
            connection.execute(update(promotions).where(*held).values(state=_payload(saved)))
    if holds.rowcount != 1:
        raise PromotionConflict(_lost(engine, state.domain, state.version, holder))
    return saved


def override_rollout(
    engine: Engine,
    domain: str,
    model_name: str,
    arms: list[Arm],
    reason: str,
    actor: str,
    expected_revision: int | None = None,
) -> tuple[Rollout, PromotionState | None]:
    """An operator's change of the rollout (set_rollout's arguments), which ends the domain's running promotion.

    One transaction: the promotion ends ABORTED, "ended by operator <actor>: <reason>", with an
    "operator" decision and a `rollback` row, exactly when the change is written, so its controller can
    neither write its weights over the change nor promote. Returns the rollout as written and the
    promotion it ended (None when none was running).
    """
    now = time.time()
    with engine.begin() as connection:
        # A write before any read, as in write_canary_rollout: it takes SQLite's write lock (a read first
        # would see the rollout as it was before a controller's write committed) and, on PostgreSQL, the
        # promotion's row lock before the rollout's, in the controller's order.
        unchanged = {"updated_at": promotions.c.updated_at}
        connection.execute(update(promotions).where(promotions.c.domain == domain).values(**unchanged))
        rollout = write_rollout(connection, domain, model_name, arms, reason, actor, expected_revision)
        for _ in range(_CLAIM_ATTEMPTS):
            row = connection.execute(select(promotions).where(promotions.c.domain == domain)).first()
            current = None if row is None else _from_row(row)
            if current is None or current.status != RUNNING:
                return rollout, None
            ended = _ended(current, ABORTED, f"ended by operator {actor}: {reason}", actor, now, OPERATOR)
            changed = connection.execute(update(promotions).where(*_unchanged(current)).values(**_columns(ended, now)))
            if changed.rowcount == 1:
                append_audit(connection, _end_entry(current, ended, actor, now))
                return rollout, ended
        raise PromotionConflict(f"the promotion of {domain} kept changing while {actor} changed its rollout; try again")


def end_promotion(
    engine: Engine, domain: str, status: str, reason: str, actor: str, now: float, *, by_operator: bool = False
) -> PromotionState:
    """Finish the domain's running promotion with `status` whoever holds it (an operator's abort); audited
    (`rollback`) in the same transaction.

    Its controller's next write then fails with PromotionConflict, and it stops. `by_operator`: it
    ends because an operator changed its rollout (ABORTED, with an "operator" decision).
    """
    if status not in FINAL:
        raise ValueError(f"status must be one of {sorted(FINAL)}, got {status!r}")
    for _ in range(_CLAIM_ATTEMPTS):
        current = read_promotion(engine, domain)
        if current is None or current.status != RUNNING:
            found = "none" if current is None else f"v{current.version} is {current.status}"
            raise PromotionConflict(f"{domain} has no running promotion to end ({found})")
        action = OPERATOR if by_operator else "abort" if status == ABORTED else "rollback"
        ended = _ended(current, status, reason, actor, now, action)
        if _compare_and_set(engine, current, ended, now, _end_entry(current, ended, actor, now)):
            return ended
    raise PromotionConflict(f"the promotion of {domain} kept changing while {actor} tried to end it; try again")


def promoted_at(state: PromotionState) -> float | None:
    """When a promotion ended promoted: the time of its last decision (None on a promotion not promoted)."""
    if state.status != PROMOTED or not state.decisions:
        return None
    return float(state.decisions[-1]["at"])


def revert_promotion(engine: Engine, domain: str, version: str, reason: str, actor: str, now: float) -> PromotionState:
    """Mark the domain's promotion of `version` reverted (the post-promotion watch found it worse than the version
    it replaced), audited (`rollback`) in the same transaction; its moves are then settled like a rollback's.

    PromotionConflict when the domain's latest promotion is not `version` promoted (another one began since).
    """
    for _ in range(_CLAIM_ATTEMPTS):
        current = read_promotion(engine, domain)
        if current is None or current.version != version or current.status != PROMOTED:
            found = "none" if current is None else f"v{current.version} is {current.status}"
            raise PromotionConflict(f"{domain} has no promotion of v{version} to revert ({found})")
        ended = replace(_ended(current, REVERTED, reason, actor, now, "revert"), settled=False)
        entry = AuditEntry(domain=domain, action="rollback", subject=f"v{version}",
                           before={"status": PROMOTED, "champion": version},
                           after={"status": REVERTED, "champion": current.champion_version},
                           reason=reason, actor=actor, at=now)  # fmt: skip
        if _compare_and_set(engine, current, ended, now, entry):
            return ended
    raise PromotionConflict(f"the promotion of {domain} kept changing while {actor} tried to revert it; try again")


def end_awaiting_approval(
    engine: Engine, domain: str, version: str, status: str, reason: str, *, answer: dict[str, Any], now: float
) -> PromotionState:
    """Finish the promotion of `version` that awaits approval with `status`, as `answer` says.

    `answer` ({"action", "outcome", "by", "reason"}) completes its approval record and adds its decision.
    PromotionConflict when it awaits none (it ended meanwhile: an operator's abort, monitoring's rollback).
    """
    if status not in FINAL:
        raise ValueError(f"status must be one of {sorted(FINAL)}, got {status!r}")
    for _ in range(_CLAIM_ATTEMPTS):
        current = read_promotion(engine, domain)
        if current is None or current.version != version or not current.awaiting_approval:
            found = "none" if current is None else f"v{current.version} is {current.status}"
            raise PromotionConflict(f"{domain} has no promotion of v{version} awaiting approval ({found})")
        ended = _ended(current, status, reason, answer["by"], now, answer["action"])
        record = {"outcome": answer["outcome"], "by": answer["by"], "reason": answer["reason"], "at": now}
        ended = replace(ended, approval={**current.approval, **record})
        if _compare_and_set(engine, current, ended, now):
            return ended
    raise PromotionConflict(f"the promotion of {domain} kept changing while its approval was recorded; try again")


def _end_entry(running: PromotionState, ended: PromotionState, actor: str, now: float) -> AuditEntry:
    """The audit row of a canary ended from outside its controller, at the step it had reached: `rollback` when
    rolled back or aborted (traffic goes back to the champion either way)."""
    action = "canary_step" if ended.status == PROMOTED else "rollback"
    return AuditEntry(domain=running.domain, action=action, subject=f"v{running.version}",
                      before={"status": running.status, "step": running.step + 1},
                      after={"status": ended.status, "champion": running.champion_version},
                      reason=ended.reason, actor=actor, at=now)  # fmt: skip


def _ended(current: PromotionState, status: str, reason: str, actor: str, now: float, action: str) -> PromotionState:
    record = {"step": current.step, "action": action, "reason": reason, "figures": {}, "at": now}
    return replace(current, status=status, reason=reason, decisions=[*current.decisions, record], holder=actor)


def mark_settled(engine: Engine, domain: str, version: str, now: float) -> PromotionState:
    """Record that a finished promotion's aliases and rollout are in place; later re-runs change nothing."""
    current = read_promotion(engine, domain)
    if current is None or current.version != version or not current.finished:
        raise PromotionConflict(f"the promotion of {domain} v{version} is not finished; nothing to settle")
    if current.settled:
        return current
    settled = replace(current, settled=True)
    with engine.begin() as connection:
        connection.execute(
            update(promotions)
            .where(
                promotions.c.domain == domain,
                promotions.c.version == version,
                promotions.c.status == current.status,
            )
            .values(state=_payload(settled), updated_at=now)
        )
    return settled


def _lost(engine: Engine, domain: str, version: str, holder: str) -> str:
    current = read_promotion(engine, domain)
    if current is None:
        found = "the promotion row is gone"
    elif current.version != version:
        found = f"it now rolls out v{current.version}"
    elif current.status != RUNNING:
        found = f"it is {current.status}" + (f" ({current.reason})" if current.reason else "")
    else:
        found = f"{current.holder} took it over (heartbeat {_since(current.heartbeat_at)})"
    return f"{holder} lost the promotion of {domain} v{version}: {found}"
