"""Challenger versions the registry watch has announced: each (domain, version) at most once."""

from __future__ import annotations

import time

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from domainflow.store.schema import announcements


def claim_announcement(engine: Engine, domain: str, version: str) -> bool:
    """True for the one caller whose insert made the row; two watches running at once announce a version once."""
    try:
        with engine.begin() as connection:
            connection.execute(insert(announcements).values(domain=domain, version=version, at=time.time()))
    except IntegrityError:
        return False
    return True


def announced(engine: Engine, domain: str) -> list[str]:
    """The domain's announced versions, oldest first."""
    with engine.connect() as connection:
        query = select(announcements.c.version).where(announcements.c.domain == domain).order_by(announcements.c.at)
        return list(connection.execute(query).scalars())
