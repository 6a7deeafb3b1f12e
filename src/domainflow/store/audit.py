"""The audit log: every alias and weight change, with what, when, why and who made it."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, select

from domainflow.store.schema import audit_log


@dataclass(frozen=True)
class AuditEntry:
    domain: str
    action: str  # weights | alias | promotion | rollback | ...
    subject: str  # what changed: an alias name, the model's weights, a version
    before: Any
    after: Any
    reason: str
    actor: str  # who: a flow run, "admin-api", "cli"
    at: float = field(default_factory=time.time)
    id: int | None = None  # given by the database


def record_audit(engine: Engine, entry: AuditEntry) -> None:
    with engine.begin() as connection:
        connection.execute(insert(audit_log).values(**{k: v for k, v in asdict(entry).items() if k != "id"}))


def read_audit(
    engine: Engine, domain: str | None = None, limit: int | None = None, *, action: str | None = None
) -> list[AuditEntry]:
    """Entries oldest first (the last `limit` of them when given), of one `action` when given."""
    query = select(audit_log).order_by(audit_log.c.id.desc())
    if domain is not None:
        query = query.where(audit_log.c.domain == domain)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [AuditEntry(**row._mapping) for row in reversed(rows)]
