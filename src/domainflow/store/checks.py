"""Monitoring checks, one row each: `domainflow status` and the loop's timeline read the latest per domain."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select

from domainflow.store.schema import monitoring_checks


@dataclass(frozen=True)
class CheckRecord:
    domain: str
    version: str
    status: str  # ok | drift | degraded | insufficient
    health: float | None
    figures: dict[str, float]
    summary: dict[str, Any]  # the whole check as JSON: drift, quality, forecasts, health, events
    report_uri: str | None
    at: float


def record_check(engine: Engine, record: CheckRecord) -> int:
    """Insert the check; returns its id."""
    with engine.begin() as connection:
        row = insert(monitoring_checks).values(**asdict(record)).returning(monitoring_checks.c.id)
        inserted = connection.execute(row)
        return int(inserted.scalar_one())


def latest_checks(engine: Engine) -> dict[str, dict]:
    """Each domain's most recent check, as a dict of the table's columns."""
    newest = select(func.max(monitoring_checks.c.id)).group_by(monitoring_checks.c.domain)
    query = select(monitoring_checks).where(monitoring_checks.c.id.in_(newest))
    with engine.connect() as connection:
        return {row.domain: row._asdict() for row in connection.execute(query)}
