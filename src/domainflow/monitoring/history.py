"""Monitoring checks kept in the serving database, for `domainflow status` and the loop's timeline."""

from __future__ import annotations

import time

from sqlalchemy import Engine, func, insert, select

from domainflow.serving.database import monitoring_checks

from .check import DomainCheck


def record_check(engine: Engine, check: DomainCheck, report_uri: str | None, at: float | None = None) -> int:
    health = check.health.score if check.health is not None else None
    row = {"domain": check.domain, "version": check.version, "status": check.status, "health": health,
           "figures": check.figures(), "summary": check.to_dict(), "report_uri": report_uri,
           "at": time.time() if at is None else at}  # fmt: skip
    with engine.begin() as connection:
        inserted = connection.execute(insert(monitoring_checks).values(**row).returning(monitoring_checks.c.id))
        return int(inserted.scalar_one())


def latest_checks(engine: Engine) -> dict[str, dict]:
    """Each domain's most recent check, as a dict of the table's columns."""
    newest = select(func.max(monitoring_checks.c.id)).group_by(monitoring_checks.c.domain)
    query = select(monitoring_checks).where(monitoring_checks.c.id.in_(newest))
    with engine.connect() as connection:
        return {row.domain: row._asdict() for row in connection.execute(query)}
