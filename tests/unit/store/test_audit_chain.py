"""The audit log's hash chain on SQLite: intact when domainflow wrote it, and naming the first row that was
edited, removed or inserted behind its back. tests/integration/test_audit_chain_postgres.py runs the same
tampering on PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import select, text

from domainflow.store.audit import AuditEntry, AuditVerification, chain_hash, read_audit, record_audit, verify_audit
from domainflow.store.database import migrate, open_database
from domainflow.store.rollouts import Arm, set_rollout
from domainflow.store.schema import audit_log

ROWS = 5


@pytest.fixture
def engine(tmp_path):
    return open_database(f"sqlite:///{tmp_path / 'state.db'}")


def write_chain(engine) -> None:
    """ROWS rows from both writers: record_audit, and set_rollout's insert inside its own transaction."""
    # A tuple, keys out of order and a whole-second time: each hashes as the database gives it back.
    record_audit(engine, AuditEntry("EWR", "alias", "champion", ("1", 2), {"z": 1, "a": [1.5]}, "gate", "run-1", at=7))
    set_rollout(engine, "EWR", "m-EWR", [Arm("champion", "1", 1.0)], "first", "run-1")
    record_audit(engine, AuditEntry("EWR", "alias", "challenger", None, "2", "trained", "run-2"))
    set_rollout(engine, "EWR", "m-EWR", [Arm("champion", "1", 0.9), Arm("canary", "2", 0.1)], "canary", "run-2")
    record_audit(engine, AuditEntry("JFK", "alias", "champion", None, "1", "gate", "run-3"))


def _hash_of(connection, row_id: int) -> str:
    return connection.execute(text("SELECT row_hash FROM audit_log WHERE id = :id"), {"id": row_id}).scalar()


def edit_a_reason(connection) -> None:
    connection.execute(text("UPDATE audit_log SET reason = 'nothing happened' WHERE id = 3"))


def delete_a_middle_row(connection) -> None:
    connection.execute(text("DELETE FROM audit_log WHERE id = 3"))


def insert_a_forged_row(connection) -> None:
    connection.execute(
        text("INSERT INTO audit_log (domain, action, subject, reason, actor, at, prev_hash, row_hash) "
             "VALUES ('EWR', 'alias', 'champion', 'forged', 'someone', 9.0, :prev, :row)"),
        {"prev": "f" * 64, "row": "e" * 64},
    )  # fmt: skip


def insert_a_row_without_a_hash(connection) -> None:
    connection.execute(text("INSERT INTO audit_log (domain, action, subject, reason, actor, at) "
                            "VALUES ('EWR', 'alias', 'champion', 'forged', 'someone', 9.0)"))  # fmt: skip


def insert_a_valid_row_between_two(connection) -> None:
    """A forger who knows the scheme: ids spread apart, a row with a correct hash chained after row 20."""
    connection.execute(text("UPDATE audit_log SET id = id * 10"))
    prev = _hash_of(connection, 20)
    content = {"domain": "EWR", "action": "alias", "subject": "champion", "before": None, "after": None,
               "reason": "forged", "actor": "someone", "at": 9.0}  # fmt: skip
    connection.execute(
        text("INSERT INTO audit_log (id, domain, action, subject, reason, actor, at, prev_hash, row_hash) "
             "VALUES (25, 'EWR', 'alias', 'champion', 'forged', 'someone', 9.0, :prev, :row)"),
        {"prev": prev, "row": chain_hash(content, prev)},
    )  # fmt: skip


def edit_a_row_and_its_hash(connection) -> None:
    row = connection.execute(select(audit_log).where(audit_log.c.id == 3)).one()._mapping
    rehashed = chain_hash({**row, "reason": "nothing happened"}, row["prev_hash"])
    connection.execute(text("UPDATE audit_log SET reason = 'nothing happened', row_hash = :row WHERE id = 3"),
                       {"row": rehashed})  # fmt: skip


TAMPERING = [
    pytest.param(edit_a_reason, "row 3 was edited (its content no longer matches its hash)", id="edited"),
    pytest.param(delete_a_middle_row, "row 4 does not follow row 2: a row before it was removed", id="removed"),
    pytest.param(insert_a_forged_row, "row 6 was inserted (its previous hash matches no row before it)", id="inserted"),
    pytest.param(insert_a_row_without_a_hash, "row 6 was inserted without a hash", id="inserted-unhashed"),
    pytest.param(insert_a_valid_row_between_two, "row 25 was inserted (row 30 follows row 20)", id="inserted-valid"),
    pytest.param(edit_a_row_and_its_hash, "row 4 does not follow row 3: row 3 was edited and rehashed", id="rehashed"),
]


def test_a_chain_domainflow_wrote_verifies(engine):
    write_chain(engine)
    verified = verify_audit(engine)
    assert (verified.ok, verified.rows, verified.problem, verified.last_row) == (True, ROWS, None, ROWS)
    with engine.connect() as connection:
        assert verified.last_hash == _hash_of(connection, ROWS)
    assert read_audit(engine, "EWR")[0].before == ["1", 2]


def test_an_empty_log_verifies(engine):
    assert verify_audit(engine) == AuditVerification(ok=True, rows=0)


@pytest.mark.parametrize(("tamper", "named"), TAMPERING)
def test_tampering_is_found_and_the_row_named(engine, tamper, named):
    assert_tampering_named(engine, tamper, named)


def assert_tampering_named(engine, tamper, named: str) -> None:
    """A written chain, tampered with by raw SQL: verify fails and names the row (SQLite here, PostgreSQL too)."""
    write_chain(engine)
    with engine.begin() as connection:
        tamper(connection)
    verified = verify_audit(engine)
    assert not verified.ok
    assert verified.problem.startswith(named)


def write_at_once(engine, threads: int = 8, each: int = 20) -> list[Exception]:
    """`threads` writers append `each` rows at the same moment, half through set_rollout; the errors raised."""
    start, errors = threading.Barrier(threads), []

    def write(n: int) -> None:
        start.wait()
        try:
            for i in range(each):
                if n % 2:
                    arms = [Arm("champion", "1", 1.0 - i % 2 * 0.5), Arm("canary", "2", i % 2 * 0.5)]
                    set_rollout(engine, f"D{n}", "m", arms, f"step {i}", f"writer-{n}")
                else:
                    record_audit(engine, AuditEntry(f"D{n}", "alias", "champion", None, str(i), "x", f"writer-{n}"))
        except Exception as error:  # collected for the caller to assert on
            errors.append(error)

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


def assert_one_chain(engine, rows: int) -> None:
    verified = verify_audit(engine)
    assert (verified.ok, verified.rows, verified.problem) == (True, rows, None)
    with engine.connect() as connection:
        links = connection.execute(select(audit_log.c.prev_hash)).scalars().all()
    assert len(set(links)) == len(links) == rows  # no two rows chain onto the same one: no fork


def test_concurrent_writers_never_fork_the_chain(engine):
    assert write_at_once(engine) == []
    assert_one_chain(engine, 8 * 20)


def test_a_log_from_before_the_chain_is_chained_once_when_opened(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE audit_log (id INTEGER NOT NULL PRIMARY KEY, domain VARCHAR(200) NOT NULL, "
            "action VARCHAR(100) NOT NULL, subject VARCHAR(400) NOT NULL, before JSON, after JSON, "
            "reason TEXT NOT NULL, actor VARCHAR(400) NOT NULL, at FLOAT NOT NULL)"
        )
        connection.executemany(
            "INSERT INTO audit_log (domain, action, subject, before, after, reason, actor, at) "
            "VALUES ('EWR', 'alias', 'champion', ?, ?, 'gate', 'run-1', ?)",
            [(None, '"1"', 5), ('"1"', '{"b": 2, "a": [1, 2.5]}', 6.25), ('"2"', "null", 7.5)],
        )
    engine = open_database(f"sqlite:///{path}")
    assert verify_audit(engine).rows == 3 and verify_audit(engine).ok
    with engine.connect() as connection:
        chained = connection.execute(select(audit_log.c.row_hash).order_by(audit_log.c.id)).scalars().all()
    record_audit(engine, AuditEntry("EWR", "alias", "champion", "2", "3", "gate", "run-2"))
    migrate(engine)  # opened again: the rows keep their hashes
    with engine.connect() as connection:
        again = connection.execute(select(audit_log.c.row_hash).order_by(audit_log.c.id)).scalars().all()
    assert again[:3] == chained and len(again) == 4
    assert verify_audit(engine).ok
