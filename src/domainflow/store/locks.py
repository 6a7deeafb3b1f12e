"""One writer at a time for a domain's registry aliases, across processes and machines.

MLflow's alias API has no compare-and-set: two processes that both read "no champion" and
then both set it each believe their version became champion, and the audit would say so
twice. So every compound alias change (a gate verdict, a promotion, a rollback) first takes
the domain's lock: a row in the serving database (SQLite or PostgreSQL, the database every
writer already shares), claimed by inserting it; the primary key makes the insert atomic on
both. A holder that dies leaves a row that expires after `lease_seconds`; the next writer
then takes it over; a live holder renews its lease in the background, and confirms it before
every move it guards. Written by hand because neither MLflow nor SQLAlchemy offers a
cross-database lock, and Prefect's concurrency limits would tie the registry's consistency
to which Prefect API a process talks to.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from domainflow.store.schema import registry_locks

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05
# A holder that dies leaves its lock to the next writer this long after the holder last renewed it.
LEASE_SECONDS = 300.0


class RegistryBusy(RuntimeError):
    """The domain's lock stayed held by another writer for longer than this one would wait."""


class LockLost(RuntimeError):
    """This writer's lock expired or was taken over before it was done: it must not move anything more."""


def new_holder(actor: str) -> str:
    """A holder name unique to this call, that still says who and where."""
    return f"{actor} on {socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:8]})"


class Lease:
    """A held lock, renewed in the background while held; `confirm()` before every move it guards.

    Renewal is a conditional UPDATE on (domain, holder): once another writer has taken the row
    over, it matches nothing and the lease is lost. `confirm()` renews and checks in one
    transaction, so the move that follows it has a whole fresh lease to finish in.
    """

    def __init__(self, engine: Engine, domain: str, holder: str, lease_seconds: float):
        self.engine, self.domain, self.holder, self.lease_seconds = engine, domain, holder, lease_seconds
        self._lost: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lease-{domain}", daemon=True)

    def confirm(self) -> None:
        """Extend the lease now; LockLost when this holder no longer holds it."""
        if self._lost is None and not self._renew():
            self._lost = f"{self.holder} lost the lock of {self.domain}: it expired or another writer took it over"
        if self._lost is not None:
            raise LockLost(f"{self._lost}; stopped before moving anything more")

    def _renew(self) -> bool:
        with self.engine.begin() as connection:
            renewed = connection.execute(
                update(registry_locks)
                .where(registry_locks.c.domain == self.domain, registry_locks.c.holder == self.holder)
                .values(expires_at=time.time() + self.lease_seconds)
            )
        return renewed.rowcount == 1

    def _keep(self) -> None:
        while not self._done.wait(self.lease_seconds / 3):
            try:
                if not self._renew():
                    self._lost = f"{self.holder} lost the lock of {self.domain} while renewing it"
                    return
            except Exception:  # the database is briefly unreachable: the next tick tries again, confirm() decides
                logger.warning("renewing the registry lock of %s failed; retrying", self.domain, exc_info=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


@contextmanager
def domain_lock(
    engine: Engine, domain: str, actor: str, *, wait_seconds: float = 120.0, lease_seconds: float | None = None
) -> Iterator[Lease]:
    """Hold the domain's lock for the block, renewed while held; RegistryBusy after `wait_seconds` of waiting."""
    lease_seconds = lease_seconds or LEASE_SECONDS
    holder = new_holder(actor)
    deadline = time.monotonic() + wait_seconds
    while not _claim(engine, domain, holder, lease_seconds):
        if time.monotonic() > deadline:
            raise RegistryBusy(
                f"the registry aliases of {domain} stayed locked by {_holder(engine, domain)} for more than "
                f"{wait_seconds:g} s; a crashed holder's lock expires {lease_seconds:g} s after its last renewal"
            )
        time.sleep(POLL_SECONDS)
    lease = Lease(engine, domain, holder, lease_seconds)
    lease.start()
    try:
        yield lease
    finally:
        lease.stop()
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
