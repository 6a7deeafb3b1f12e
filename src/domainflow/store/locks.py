"""One writer at a time for a domain's registry aliases, across processes and machines.

MLflow's alias API has no compare-and-set: two processes that both read "no champion" and
then both set it each believe their version became champion, and the audit would say so
twice. So every compound alias change (a gate verdict, a promotion, a rollback) first takes
the domain's lock: a row in the serving database (SQLite or PostgreSQL, the database every
writer already shares), claimed by inserting it; the primary key makes the insert atomic on
both. A holder that dies leaves a row that expires after `lease_seconds`; the next writer
then takes it over. Written by hand because neither MLflow nor SQLAlchemy offers a
cross-database lock, and Prefect's concurrency limits would tie the registry's consistency
to which Prefect API a process talks to.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from domainflow.store.schema import registry_locks

POLL_SECONDS = 0.05


class RegistryBusy(RuntimeError):
    """The domain's lock stayed held by another writer for longer than this one would wait."""


def new_holder(actor: str) -> str:
    """A holder name unique to this call, that still says who and where."""
    return f"{actor} on {socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:8]})"


@contextmanager
def domain_lock(
    engine: Engine, domain: str, actor: str, *, wait_seconds: float = 120.0, lease_seconds: float = 300.0
) -> Iterator[str]:
    """Hold the domain's lock for the block; RegistryBusy after `wait_seconds` of waiting for it."""
    holder = new_holder(actor)
    deadline = time.monotonic() + wait_seconds
    while not _claim(engine, domain, holder, lease_seconds):
        if time.monotonic() > deadline:
            raise RegistryBusy(
                f"the registry aliases of {domain} stayed locked by {_holder(engine, domain)} for more than "
                f"{wait_seconds:g} s; a crashed holder's lock expires {lease_seconds:g} s after it was taken"
            )
        time.sleep(POLL_SECONDS)
    try:
        yield holder
    finally:
        with engine.begin() as connection:
            connection.execute(
                delete(registry_locks).where(registry_locks.c.domain == domain, registry_locks.c.holder == holder)
            )


def _claim(engine: Engine, domain: str, holder: str, lease_seconds: float) -> bool:
    now = time.time()
    with engine.begin() as connection:
        # A lock past its lease belonged to a holder that died; it is cleared before the claim.
        connection.execute(
            delete(registry_locks).where(registry_locks.c.domain == domain, registry_locks.c.expires_at < now)
        )
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(registry_locks).values(domain=domain, holder=holder, expires_at=now + lease_seconds)
            )
    except IntegrityError:
        return False
    return True


def _holder(engine: Engine, domain: str) -> str:
    with engine.connect() as connection:
        holder = connection.execute(
            select(registry_locks.c.holder).where(registry_locks.c.domain == domain)
        ).scalar_one_or_none()
    return holder or "another writer"
