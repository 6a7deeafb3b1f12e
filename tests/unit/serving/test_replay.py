"""Held-out rows replayed to the real server: predictions now, labels as feedback after the delay."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from domainflow.config import ReplayConfig
from domainflow.serving.replay import ReplayError, Traffic, encode_records, replay_traffic
from domainflow.settings import LABELLER_KEY_VARIABLE, PREDICTOR_KEY_VARIABLE, ClientKeys
from domainflow.store.rollouts import Arm
from domainflow.store.schema import feedback, predictions


def _traffic(rows, schema) -> Traffic:
    return Traffic(rows, np.zeros(len(rows)), schema.numeric_features, schema.categorical_features)


@pytest.fixture(scope="module")
def server(kit, registry, tmp_path_factory):
    with kit.serve(kit.config(), registry, tmp_path_factory.mktemp("replay")) as running:
        kit.serve_arms(running, [Arm("champion", "1", 0.7), Arm("canary", "2", 0.3)])
        yield running


@pytest.fixture(autouse=True)
def client_keys(server, monkeypatch):
    """The replay client's keys, where `domainflow run` puts the ones it creates: the environment."""
    monkeypatch.setenv(PREDICTOR_KEY_VARIABLE, server.keys["predictor"])
    monkeypatch.setenv(LABELLER_KEY_VARIABLE, server.keys["labeller"])


def test_every_replayed_row_is_predicted_logged_and_labelled(server, kit, registry, schema):
    rows = registry.sample.head(50)
    labels = np.arange(50) % 2
    traffic = Traffic(rows, labels, schema.numeric_features, schema.categorical_features)
    report = replay_traffic(server.url, "EWR", traffic,
                            ReplayConfig(batch_size=40, feedback_delay_seconds=0.0, max_rows=120),
                            id_prefix="cycle")  # fmt: skip

    # 50 held-out rows cycled to 120 requests, in batches of 40 (the last batch of a cycle is short).
    assert report.sent == 120 and report.labelled == 120 and not report.stopped_early
    assert sum(report.by_variant.values()) == 120 and set(report.by_variant) == {"champion", "canary"}
    logged = kit.logged(server, [f"cycle-{i}" for i in range(120)])
    assert len(logged) == 120
    with server.engine.connect() as connection:
        labelled = connection.execute(
            select(func.count()).select_from(feedback).where(feedback.c.request_id.like("cycle-%"))
        ).scalar_one()
        first = connection.execute(select(predictions.c.features).where(predictions.c.request_id == "cycle-50"))
    assert labelled == 120
    assert first.scalar_one() == encode_records(rows.head(1), schema.numeric_features, schema.categorical_features)[0]


def test_a_replay_stops_when_told(server, registry, schema):
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    report = replay_traffic(server.url, "EWR", _traffic(registry.sample, schema),
                            ReplayConfig(batch_size=10, feedback_delay_seconds=0.0), stop=stop)  # fmt: skip
    assert report.stopped_early and report.sent == 20 and report.labelled == 20


def test_the_servers_refusal_is_reported_with_its_reason(server, registry, schema):
    with pytest.raises(ReplayError, match="404.*JFK"):
        replay_traffic(server.url, "JFK", _traffic(registry.sample, schema), ReplayConfig())  # fmt: skip
    with pytest.raises(ReplayError, match="no held-out rows"):
        replay_traffic(server.url, "EWR", _traffic(registry.sample.head(0), schema), ReplayConfig())  # fmt: skip


def test_a_domain_is_replayed_while_another_configured_one_has_no_champion(kit, registry, schema, tmp_path):
    """JFK has no model: the server is not ready for it, and EWR's traffic does not wait on it."""
    with kit.serve(kit.config(domains=("EWR", "JFK")), registry, tmp_path) as server:
        keys = ClientKeys(predictor=server.keys["predictor"], labeller=server.keys["labeller"])
        report = replay_traffic(server.url, "EWR", _traffic(registry.sample, schema),
                                ReplayConfig(feedback_delay_seconds=0.0, max_rows=20), keys=keys)  # fmt: skip
        readiness = server.client.get("/ready")

    assert report.sent == 20 and report.labelled == 20
    assert readiness.status_code == 503
    assert readiness.json()["domains"]["EWR"]["ready"] and not readiness.json()["domains"]["JFK"]["ready"]


def test_the_traffics_timestamp_travels_as_each_records_event_time(server, kit, registry, schema):
    rows = registry.sample.head(3).assign(when=pd.to_datetime(["2013-10-01 06:00", None, "2013-12-31 23:59"]))
    traffic = Traffic(rows, np.zeros(3), schema.numeric_features, schema.categorical_features, timestamp="when")
    report = replay_traffic(server.url, "EWR", traffic, ReplayConfig(feedback_delay_seconds=0.0, max_rows=3),
                            id_prefix="timed")  # fmt: skip
    assert report.sent == 3
    logged = kit.logged(server, ["timed-0", "timed-1", "timed-2"])
    assert logged["timed-0"]["event_time"] == pd.Timestamp("2013-10-01 06:00", tz="UTC").timestamp()
    assert logged["timed-1"]["event_time"] is None
    assert logged["timed-2"]["event_time"] == pd.Timestamp("2013-12-31 23:59", tz="UTC").timestamp()


def test_missing_values_travel_as_null():
    frame = pd.DataFrame({"distance": [100.0, np.nan], "carrier": ["UA", None]})
    assert encode_records(frame, ["distance"], ["carrier"]) == [
        {"distance": 100.0, "carrier": "UA"},
        {"distance": None, "carrier": None},
    ]


def test_a_background_replay_ends_with_its_block_or_reports_running_out(server, registry, schema):
    from domainflow.serving.replay import ReplayPlan, replaying

    traffic = _traffic(registry.sample, schema)
    exhausted = []
    config = ReplayConfig(batch_size=10, feedback_delay_seconds=0.0, max_rows=30)
    with replaying(ReplayPlan(server.url, "EWR", traffic, config), on_exhausted=exhausted.append) as run:
        run.stop.wait(timeout=0)  # the block does nothing: the replay runs out of rows first
        while run.report is None and not exhausted:
            time.sleep(0.05)
    assert run.report.sent == 30 and exhausted == [run.report]

    endless = ReplayConfig(batch_size=10, feedback_delay_seconds=0.0, rate_limit=50.0)
    with replaying(ReplayPlan(server.url, "EWR", traffic, endless), on_exhausted=exhausted.append) as run:
        time.sleep(0.3)
    assert run.report.stopped_early and 0 < run.report.sent < endless.max_rows and len(exhausted) == 1
