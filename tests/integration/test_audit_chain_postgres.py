"""The audit log's hash chain on PostgreSQL, as production runs it: the same tampering as on SQLite is found
and named, and concurrent writers (each appending under the advisory lock) never fork the chain."""

from __future__ import annotations

import pytest

from domainflow.store.audit import verify_audit
from domainflow.store.database import open_database

from ..unit.store.test_audit_chain import (
    ROWS,
    TAMPERING,
    assert_one_chain,
    assert_tampering_named,
    write_at_once,
    write_chain,
)

pytestmark = pytest.mark.integration


def test_a_chain_domainflow_wrote_verifies_on_postgresql(postgres_database):
    engine = open_database(postgres_database)
    write_chain(engine)
    verified = verify_audit(engine)
    assert (verified.ok, verified.rows, verified.last_row) == (True, ROWS, ROWS)
    engine.dispose()


@pytest.mark.parametrize(("tamper", "named"), TAMPERING)
def test_tampering_is_found_and_the_row_named_on_postgresql(postgres_database, tamper, named):
    engine = open_database(postgres_database)
    assert_tampering_named(engine, tamper, named)
    engine.dispose()


def test_concurrent_writers_never_fork_the_chain_on_postgresql(postgres_database):
    engine = open_database(postgres_database)
    assert write_at_once(engine) == []
    assert_one_chain(engine, 8 * 20)
    engine.dispose()
