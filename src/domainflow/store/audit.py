"""The audit log: every alias and weight change, with what, when, why and which run made it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select

from domainflow.store.schema import audit_log


@dataclass(frozen=True)
class AuditEntry:
    id: int
    domain: str
    action: str
    subject: str
    before: Any
    after: Any
    reason: str
    actor: str
    at: float


def record_audit(
    engine: Engine, domain: str, action: str, subject: str, before: Any, after: Any, reason: str, actor: str
) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(audit_log).values(
                domain=domain, action=action, subject=subject, before=before, after=after, reason=reason,
                actor=actor, at=time.time(),
            )
        )  # fmt: skip


def read_audit(engine: Engine, domain: str | None = None, limit: int | None = None) -> list[AuditEntry]:
    """Entries oldest first (the last `limit` of them when given)."""
    query = select(audit_log).order_by(audit_log.c.id.desc())
    if domain is not None:
        query = query.where(audit_log.c.domain == domain)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [AuditEntry(**row._mapping) for row in reversed(rows)]
