"""Opening the state database: a fresh file, a log from before the version table, a newer schema, racing openers."""

from __future__ import annotations

import sqlite3
import threading

import pandas as pd
import pytest
from sqlalchemy import create_engine, event, insert, select

from domainflow.monitoring.window import read_log
from domainflow.store import database
from domainflow.store.database import LATEST_VERSION, SchemaError, migrate, open_database, schema_version
from domainflow.store.schema import schema_versions

FEATURES = ["distance", "carrier"]


def _engine(path):
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
    event.listen(engine, "connect", database._sqlite_pragmas)
    return engine


def test_a_fresh_database_records_every_step_once(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'state.db'}")
    with engine.connect() as connection:
        rows = connection.execute(select(schema_versions).order_by(schema_versions.c.version)).all()
    assert [row.version for row in rows] == list(range(1, LATEST_VERSION + 1))
    assert all(row.description for row in rows)
    migrate(engine)  # opening again applies nothing twice
    with engine.connect() as connection:
        again = connection.execute(select(schema_versions).order_by(schema_versions.c.version)).all()
    assert again == rows


def test_an_older_log_gains_the_event_time_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE predictions (request_id VARCHAR(200) PRIMARY KEY, domain VARCHAR(200) NOT NULL, "
            "variant VARCHAR(100) NOT NULL, model_version VARCHAR(50) NOT NULL, score FLOAT, "
            "latency_ms FLOAT NOT NULL, created_at FLOAT NOT NULL, error TEXT, features JSON)"
        )
        connection.execute("INSERT INTO predictions VALUES ('kept', 'EWR', 'champion', '1', 0.4, 2.0, 10.0, NULL, "
                           "'{\"distance\": 1.0}')")  # fmt: skip
    engine = open_database(f"sqlite:///{path}")
    window = read_log(engine, "EWR", FEATURES)
    assert window.rows == 1 and window.frame["distance"].item() == 1.0
    assert pd.isna(window.frame["carrier"].item())
    assert schema_version(engine) == LATEST_VERSION
    # and the index monitoring reads by, which a create-if-missing table would not get
    with sqlite3.connect(path) as connection:
        indexes = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ix_predictions_version_time" in indexes


def test_a_database_a_newer_domainflow_migrated_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "newer.db"
    engine = _engine(path)
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(insert(schema_versions).values(version=LATEST_VERSION + 1, description="x", applied_at=0))
    with pytest.raises(SchemaError, match=rf"schema version {LATEST_VERSION + 1}.*upgrade domainflow"):
        migrate(_engine(path))
    assert schema_version(_engine(path)) == LATEST_VERSION + 1


def migrate_at_once(engines) -> list[Exception]:
    """Every engine migrates its database at the same moment, each in a thread; returns the errors raised."""
    start, errors = threading.Barrier(len(engines)), []

    def open_one(engine):
        start.wait()
        try:
            migrate(engine)
        except Exception as error:  # collected for the caller to assert on
            errors.append(error)

    threads = [threading.Thread(target=open_one, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_processes_opening_a_fresh_file_at_once_all_succeed(tmp_path):
    """Every server, flow run and domain worker migrates on open; none may fail because another does too."""
    engines = [_engine(tmp_path / "fresh.db") for _ in range(6)]
    assert migrate_at_once(engines) == []
    assert schema_version(engines[0]) == LATEST_VERSION
