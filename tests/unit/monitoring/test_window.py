"""The prediction log read back for monitoring: features, scores, labels, event days; and the retraining window."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from domainflow.config import SplitConfig
from domainflow.monitoring.window import LABEL, day_quality, days_in, read_log, stream_log_days
from domainflow.retraining.plan import labelled_until, retraining_window
from domainflow.store.database import open_database
from domainflow.store.prediction_log import PredictionRecord, record_feedback, record_predictions

FEATURES = ["distance", "carrier"]


def _at(day: str, hour: int = 12) -> float:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=UTC).timestamp()


@pytest.fixture
def engine(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/log.db")
    rng = np.random.default_rng(0)
    records = []
    for i in range(300):
        day = ["2013-09-01", "2013-09-02", "2013-09-03"][i % 3]
        records.append(PredictionRecord(
            request_id=f"r{i}", domain="EWR", variant="champion", model_version="1" if i < 270 else "2",
            score=float(rng.uniform(0.05, 0.95)), latency_ms=float(i % 10), created_at=1_000.0 + i,
            features={"distance": float(i), "carrier": "UA" if i % 2 else "B6"},
            event_time=_at(day) if i % 30 else None,  # every 30th sent no event time: the request's clock stands in
        ))  # fmt: skip
    records.append(PredictionRecord("other", "JFK", "champion", "1", 0.5, 1.0, 5_000.0, features={}, event_time=0.0))
    record_predictions(engine, records)
    record_feedback(engine, "EWR", [(f"r{i}", i % 2) for i in range(0, 200)])
    return engine


def test_the_log_reads_back_one_versions_rows_with_features_labels_and_event_days(engine):
    window = read_log(engine, "EWR", FEATURES, version="1", history_days=20_000)
    assert window.rows == 270 and set(window.frame.columns) >= {*FEATURES, "score", LABEL, "loss", "at"}
    assert len(window.labelled) == 200
    assert window.frame.loc[window.frame["distance"] == 5.0, "carrier"].item() == "UA"
    assert window.frame[LABEL].isna().sum() == 70  # unlabelled rows hold NaN
    # Oldest first; the rows without an event time fall back to the request's time (1970 here).
    assert window.frame["at"].is_monotonic_increasing
    assert (window.frame["at"] < "1971-01-01").sum() == 9
    assert window.latest(10).rows == 10 and window.error_rate == 0.0
    assert window.p95_latency_ms == pytest.approx(9.0)


def test_history_days_keep_only_the_days_before_the_latest(engine):
    recent = read_log(engine, "EWR", FEATURES, version="1", history_days=1.5)
    assert set(recent.frame["at"].dt.strftime("%Y-%m-%d")) == {"2013-09-02", "2013-09-03"}
    assert read_log(engine, "LGA", FEATURES).rows == 0


def test_the_window_is_the_latest_rows_of_the_history(engine):
    history = read_log(engine, "EWR", FEATURES, version="1", history_days=20_000, max_rows=1_000)
    window = read_log(engine, "EWR", FEATURES, version="1", history_days=20_000, max_rows=50)
    assert window.rows == 50
    pd.testing.assert_frame_equal(window.frame, history.frame.tail(50).reset_index(drop=True))


def test_the_history_streams_one_whole_day_at_a_time_as_in_memory(engine):
    whole = read_log(engine, "EWR", FEATURES, version="1", history_days=20_000, max_rows=1_000)
    # Chunks of 7 rows: days begin and end inside chunks and span several of them.
    streamed = list(stream_log_days(engine, "EWR", FEATURES, version="1", history_days=20_000, chunk_rows=7))
    in_memory = list(days_in(whole))
    assert [day for day, _ in streamed] == [day for day, _ in in_memory]
    assert [day.strftime("%Y-%m-%d") for day, _ in streamed][-3:] == ["2013-09-01", "2013-09-02", "2013-09-03"]
    for (day, rows), (_, expected) in zip(streamed, in_memory, strict=True):
        assert (rows.frame["at"].dt.floor("D") == day).all() and rows.version == "1"
        pd.testing.assert_frame_equal(rows.frame, expected.frame.reset_index(drop=True))
    recent = stream_log_days(engine, "EWR", FEATURES, version="1", history_days=1.5)
    assert [day.strftime("%Y-%m-%d") for day, _ in recent] == ["2013-09-02", "2013-09-03"]
    assert list(stream_log_days(engine, "LGA", FEATURES)) == []


def test_a_days_quality_needs_enough_labels(engine):
    days = dict(stream_log_days(engine, "EWR", FEATURES, version="1", history_days=3))
    figures = [day_quality(rows, min_labelled=50) for rows in days.values()]
    # Every 30th row sent no event time: it counts on its request's day (in 1970), not here.
    assert [f["predictions"] for f in figures] == [81, 90, 90] and [f["labelled"] for f in figures] == [60, 67, 66]
    assert all(f["log_loss"] > 0 and 0 <= f["auc"] <= 1 for f in figures)
    assert all(np.isnan(day_quality(rows, min_labelled=1_000)["log_loss"]) for rows in days.values())


def test_a_retrain_moves_the_split_to_where_the_labels_end(engine):
    current = SplitConfig()  # train < Jul, validation Jul, test Aug
    until = labelled_until(engine, "EWR")
    assert until == datetime(2013, 9, 4)
    window = retraining_window(current, datetime(2013, 11, 1))
    assert window.split == SplitConfig(train_until=datetime(2013, 8, 31), validation_until=datetime(2013, 10, 1),
                                       test_until=datetime(2013, 11, 1))  # fmt: skip
    stale = retraining_window(current, datetime(2013, 8, 15))
    assert stale.split is None and "nothing new to train on" in stale.note
    assert retraining_window(current, None).split is None
    assert labelled_until(engine, "LGA") is None
