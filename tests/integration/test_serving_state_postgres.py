"""The serving state on PostgreSQL, as production runs it: rollouts, the prediction log, feedback, the audit."""

from __future__ import annotations

import pytest

from domainflow.store.audit import read_audit
from domainflow.store.database import open_database
from domainflow.store.prediction_log import (
    PredictionRecord,
    arm_stats,
    labels_by_key,
    record_feedback,
    record_predictions,
    stratified_arm_stats,
)
from domainflow.store.rollouts import Arm, RolloutConflict, read_rollout, set_rollout

pytestmark = pytest.mark.integration


def test_rollouts_log_feedback_and_audit_round_trip_on_postgresql(postgres_database):
    engine = open_database(postgres_database)
    set_rollout(engine, "EWR", "m", [Arm("champion", "1", 1.0)], "first", "test")
    rollout = set_rollout(engine, "EWR", "m", [Arm("champion", "1", 0.9), Arm("canary", "2", 0.1)], "canary", "test")
    assert rollout.revision == 2 and read_rollout(engine, "EWR").weight_of("canary") == 0.1
    with pytest.raises(RolloutConflict):
        set_rollout(engine, "EWR", "m", [Arm("champion", "2", 1.0)], "late", "test", expected_revision=1)

    records = [
        PredictionRecord(f"r{i}", "EWR", "canary" if i % 4 == 0 else "champion", "2" if i % 4 == 0 else "1",
                         0.2 + 0.001 * i, 3.0 + i % 5, float(i), features={"distance": 100.0 + i, "carrier": "UA"})
        for i in range(200)
    ]  # fmt: skip
    record_predictions(engine, records)
    refused = record_feedback(engine, "EWR", [(f"r{i}", i % 2) for i in range(0, 200, 2)] + [("nope", 1)])
    assert refused.accepted == 0 and refused.unknown == ["nope"]
    result = record_feedback(engine, "EWR", [(f"r{i}", i % 2) for i in range(0, 200, 2)], key_id="k1")
    assert result.accepted == 100 and labels_by_key(engine, "EWR", since=0) == {"k1": 100}

    stats = arm_stats(engine, "EWR", since=0)
    assert stats["canary"].predictions == 50 and stats["champion"].predictions == 150
    assert stats["canary"].labelled == 50 and stats["canary"].p95_latency_ms is not None
    strata = stratified_arm_stats(engine, "EWR", [0.0, 100.0])
    assert [sum(s.predictions for s in stratum.values()) for stratum in strata] == [100, 100]
    assert [e.reason for e in read_audit(engine, "EWR")] == ["first", "canary"]
    engine.dispose()


def test_processes_migrating_a_fresh_postgresql_database_at_once_all_succeed(postgres_database):
    """Without the advisory lock, concurrent CREATE TABLE IF NOT EXISTS can fail on PostgreSQL's catalog."""
    from sqlalchemy import create_engine

    from domainflow.store.database import LATEST_VERSION, _with_installed_driver, schema_version

    from ..unit.store.test_database import migrate_at_once

    engines = [create_engine(_with_installed_driver(postgres_database)) for _ in range(6)]
    errors = migrate_at_once(engines)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert schema_version(open_database(postgres_database)) == LATEST_VERSION


def test_every_state_database_connection_gives_up_on_a_hung_postgresql(postgres_database):
    """No connect, statement or pool timeout was set: a hung database held every call, and the server's
    queue grew until the pod was killed (issue 18)."""
    from sqlalchemy import text

    engine = open_database(postgres_database)
    with engine.connect() as connection:
        shown = {name: connection.execute(text(f"SHOW {name}")).scalar() for name in ("statement_timeout",
                                                                                       "lock_timeout")}  # fmt: skip
        libpq = connection.connection.dbapi_connection.info.get_parameters()
    assert shown == {"statement_timeout": "2min", "lock_timeout": "1min"}
    assert {k: libpq.get(k) for k in ("connect_timeout", "keepalives", "keepalives_idle")} == {
        "connect_timeout": "10", "keepalives": "1", "keepalives_idle": "30"}  # fmt: skip
    assert engine.pool.timeout() == 30
    engine.dispose()
