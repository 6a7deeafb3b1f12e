"""Held-out rows replayed to the real server: predictions now, labels as feedback after the delay."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sqlalchemy import func, select

from domainflow.config import ReplayConfig
from domainflow.serving.database import feedback, predictions
from domainflow.serving.replay import ReplayError, encode_records, replay_traffic
from domainflow.serving.rollouts import Arm


@pytest.fixture(scope="module")
def server(kit, registry, tmp_path_factory):
    with kit.serve(kit.config(), registry, tmp_path_factory.mktemp("replay")) as running:
        kit.serve_arms(running, [Arm("champion", "1", 0.7), Arm("canary", "2", 0.3)])
        yield running


def test_every_replayed_row_is_predicted_logged_and_labelled(server, kit, registry, schema):
    rows = registry.sample.head(50)
    labels = np.arange(50) % 2
    report = replay_traffic(server.url, "EWR", rows, labels, schema.numeric_features, schema.categorical_features,
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

    report = replay_traffic(server.url, "EWR", registry.sample, np.zeros(len(registry.sample)),
                            schema.numeric_features, schema.categorical_features,
                            ReplayConfig(batch_size=10, feedback_delay_seconds=0.0), stop=stop)  # fmt: skip
    assert report.stopped_early and report.sent == 20 and report.labelled == 20


def test_the_servers_refusal_is_reported_with_its_reason(server, registry, schema):
    with pytest.raises(ReplayError, match="404.*JFK"):
        replay_traffic(server.url, "JFK", registry.sample, np.zeros(len(registry.sample)),
                       schema.numeric_features, schema.categorical_features, ReplayConfig())  # fmt: skip
    with pytest.raises(ReplayError, match="no held-out rows"):
        replay_traffic(server.url, "EWR", registry.sample.head(0), np.zeros(0),
                       schema.numeric_features, schema.categorical_features, ReplayConfig())  # fmt: skip


def test_missing_values_travel_as_null():
    import pandas as pd

    frame = pd.DataFrame({"distance": [100.0, np.nan], "carrier": ["UA", None]})
    assert encode_records(frame, ["distance"], ["carrier"]) == [
        {"distance": 100.0, "carrier": "UA"},
        {"distance": None, "carrier": None},
    ]


def test_a_background_replay_ends_with_its_block_or_reports_running_out(server, registry, schema):
    from domainflow.serving.replay import replaying

    rows, labels = registry.sample, np.zeros(len(registry.sample))
    exhausted = []
    config = ReplayConfig(batch_size=10, feedback_delay_seconds=0.0, max_rows=30)
    with replaying(server.url, "EWR", rows, labels, schema.numeric_features, schema.categorical_features, config,
                   on_exhausted=exhausted.append) as run:  # fmt: skip
        run.stop.wait(timeout=0)  # the block does nothing: the replay runs out of rows first
        while run.report is None and not exhausted:
            time.sleep(0.05)
    assert run.report.sent == 30 and exhausted == [run.report]

    endless = ReplayConfig(batch_size=10, feedback_delay_seconds=0.0, rate_limit=50.0)
    with replaying(server.url, "EWR", rows, labels, schema.numeric_features, schema.categorical_features, endless,
                   on_exhausted=exhausted.append) as run:  # fmt: skip
        time.sleep(0.3)
    assert run.report.stopped_early and 0 < run.report.sent < endless.max_rows and len(exhausted) == 1
