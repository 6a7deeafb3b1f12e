"""Each domain's lifecycle outcome, stored under the key of the inputs that produced it.

A lifecycle run changes the world it runs in: its canary promotes, its replay fills the
prediction log with labels, and a second run on the same inputs would then see a later
labelled window and retrain. So once a domain's loop has finished, its outcome is kept
here, keyed by its inputs (domain, data fingerprint, the whole config, code version); a
later run with that key reports it ("unchanged since ...") instead of acting again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from domainflow.store.schema import lifecycle_runs


@dataclass(frozen=True)
class StoredLifecycle:
    domain: str
    run_key: str
    actor: str
    finished_at: float
    outcome: dict[str, Any]  # DomainOutcome.model_dump(mode="json")

    def describe(self) -> str:
        """ "unchanged since prefect-flow-run/… at 2026-12-07 13:10 UTC"."""
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.finished_at))
        return f"unchanged since {self.actor} at {stamp}"


def record_lifecycle(engine: Engine, domain: str, run_key: str, actor: str, outcome: dict[str, Any]) -> None:
    """Keep (or replace) the domain's outcome for `run_key`."""
    with engine.begin() as connection:
        connection.execute(
            delete(lifecycle_runs).where(lifecycle_runs.c.domain == domain, lifecycle_runs.c.run_key == run_key)
        )
        connection.execute(insert(lifecycle_runs).values(domain=domain, run_key=run_key, actor=actor,
                                                          finished_at=time.time(), outcome=outcome))  # fmt: skip


def read_lifecycle(engine: Engine, domain: str, run_key: str) -> StoredLifecycle | None:
    with engine.connect() as connection:
        row = connection.execute(
            select(lifecycle_runs).where(lifecycle_runs.c.domain == domain, lifecycle_runs.c.run_key == run_key)
        ).first()
    if row is None:
        return None
    return StoredLifecycle(row.domain, row.run_key, row.actor, row.finished_at, dict(row.outcome))
