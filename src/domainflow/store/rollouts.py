"""A domain's rollout: which registered versions serve it, under which variant names, with what share of traffic.

The server reads it every `serving.refresh_seconds` (and routes by it, domainflow.serving.routing);
the canary controller and the admin API write it. Every change bumps the revision and is written to the audit log
in the same transaction, so the log is complete even if the writer dies right after.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from domainflow.store.audit import AuditEntry, append_audit
from domainflow.store.schema import rollouts

CHAMPION_ARM = "champion"
CANARY_ARM = "canary"


class RolloutError(ValueError):
    """A rollout a user or controller asked for is invalid; the message names the problem."""


class RolloutConflict(RuntimeError):
    """Someone else changed the rollout since it was read (compare-and-set on the revision failed)."""


@dataclass(frozen=True)
class Arm:
    variant: str
    version: str
    weight: float


@dataclass(frozen=True)
class Rollout:
    domain: str
    model_name: str
    arms: tuple[Arm, ...]
    revision: int
    updated_at: float
    reason: str

    def weight_of(self, variant: str) -> float:
        return next((arm.weight for arm in self.arms if arm.variant == variant), 0.0)

    def version_of(self, variant: str) -> str | None:
        return next((arm.version for arm in self.arms if arm.variant == variant), None)


def check_arms(arms: Sequence[Arm]) -> tuple[Arm, ...]:
    """Arms with unique names, weights in [0, 1] summing to 1, and at least one with traffic."""
    if not arms:
        raise RolloutError("a rollout needs at least one arm")
    names = [arm.variant for arm in arms]
    if len(set(names)) != len(names):
        raise RolloutError(f"variant names must be unique, got {names}")
    for arm in arms:
        if not arm.variant or not arm.version:
            raise RolloutError(f"every arm needs a variant name and a model version, got {arm}")
        if not (math.isfinite(arm.weight) and 0 <= arm.weight <= 1):
            raise RolloutError(f"weight of {arm.variant!r} must lie in [0, 1], got {arm.weight}")
    total = sum(arm.weight for arm in arms)
    if abs(total - 1.0) > 1e-6:
        shares = {arm.variant: arm.weight for arm in arms}
        raise RolloutError(f"weights must sum to 1, got {total:.6g} from {shares}")
    return tuple(Arm(arm.variant, str(arm.version), float(arm.weight)) for arm in arms)


def _from_row(row) -> Rollout:
    arms = tuple(Arm(a["variant"], str(a["version"]), float(a["weight"])) for a in row.arms)
    return Rollout(row.domain, row.model_name, arms, row.revision, row.updated_at, row.reason)


def read_rollout(engine: Engine, domain: str) -> Rollout | None:
    with engine.connect() as connection:
        row = connection.execute(select(rollouts).where(rollouts.c.domain == domain)).first()
    return None if row is None else _from_row(row)


def read_rollouts(engine: Engine) -> list[Rollout]:
    with engine.connect() as connection:
        rows = connection.execute(select(rollouts).order_by(rollouts.c.domain)).all()
    return [_from_row(row) for row in rows]


def set_rollout(
    engine: Engine,
    domain: str,
    model_name: str,
    arms: Sequence[Arm],
    reason: str,
    actor: str,
    expected_revision: int | None = None,
) -> Rollout:
    """Replace the domain's arms, audit the change; a no-op when they are already what is asked.

    `expected_revision` makes it a compare-and-set: the write fails with RolloutConflict when the
    rollout moved on since the caller read it (0: there was none). Without it the write applies to
    whatever is current, but one that races another write at the same instant still gets a
    RolloutConflict. Returns the rollout as this call wrote it, not as a later writer left it.
    """
    with engine.begin() as connection:
        return write_rollout(connection, domain, model_name, arms, reason, actor, expected_revision)


def write_rollout(
    connection: Connection,
    domain: str,
    model_name: str,
    arms: Sequence[Arm],
    reason: str,
    actor: str,
    expected_revision: int | None = None,
) -> Rollout:
    """set_rollout inside the caller's transaction, for a write that must stand or fall with another."""
    arms = check_arms(arms)
    now = time.time()
    payload = [asdict(arm) for arm in arms]
    row = connection.execute(select(rollouts).where(rollouts.c.domain == domain)).first()
    current = None if row is None else _from_row(row)
    found = current.revision if current else 0
    if expected_revision is not None and found != expected_revision:
        raise RolloutConflict(
            f"the rollout of {domain} is at revision {found}, not {expected_revision}: someone else changed it"
        )
    if current is not None and current.arms == arms and current.model_name == model_name:
        return current
    if current is None:
        try:
            connection.execute(
                insert(rollouts).values(
                    domain=domain, model_name=model_name, arms=payload, revision=1, updated_at=now, reason=reason
                )
            )
        except IntegrityError:  # another writer created it since it was read
            raise RolloutConflict(
                f"the rollout of {domain} was created by another writer at the same time; read it again"
            ) from None
    else:
        changed = connection.execute(
            update(rollouts)
            .where(rollouts.c.domain == domain, rollouts.c.revision == current.revision)
            .values(model_name=model_name, arms=payload, revision=current.revision + 1, updated_at=now,
                    reason=reason)
        )  # fmt: skip
        if changed.rowcount != 1:
            raise RolloutConflict(f"the rollout of {domain} changed while it was being updated; read it again")
    before = None if current is None else [asdict(arm) for arm in current.arms]
    entry = AuditEntry(domain=domain, action="weights", subject=model_name, before=before, after=payload,
                       reason=reason, actor=actor, at=now)  # fmt: skip
    append_audit(connection, entry)
    return Rollout(domain, model_name, arms, found + 1, now, reason)
