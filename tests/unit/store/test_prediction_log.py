from __future__ import annotations

import math

import numpy as np
import pytest

from domainflow.store.database import open_database
from domainflow.store.prediction_log import (
    PredictionRecord,
    arm_stats,
    labels_by_key,
    record_feedback,
    record_predictions,
    stratified_arm_stats,
)


@pytest.fixture
def engine(tmp_path):
    return open_database(f"sqlite:///{tmp_path / 'state.db'}")


def _records(variant, version, scores, start, latency):
    return [
        PredictionRecord(f"{variant}-{i}", "EWR", variant, version, s, latency + i % 10, start + i)
        for i, s in enumerate(scores)
    ]


def test_feedback_joins_by_id_and_the_stats_carry_the_log_loss(engine):
    record_predictions(engine, _records("champion", "1", [0.2, 0.8, 0.5, 0.9], 0, 5.0))
    record_predictions(engine, [PredictionRecord("bad", "EWR", "canary", "2", None, 3.0, 1, error="boom")])
    # All or nothing: an unknown id, or both labels for one id in one request, stores none of the labels.
    refused = record_feedback(engine, "EWR", [("champion-0", 0), ("champion-1", 1), ("champion-1", 0), ("nope", 1)])
    assert (refused.accepted, refused.unknown, refused.conflicts) == (0, ["nope"], ["champion-1"])
    result = record_feedback(engine, "EWR", [("champion-0", 0), ("champion-1", 1), ("champion-1", 1)], key_id="k1")
    assert result.accepted == 2 and result.duplicates == ["champion-1"] and result.unknown == []
    # The first label stands: the same again is a duplicate, the other label a conflict; a failed prediction
    # (no score) cannot be labelled.
    again = record_feedback(engine, "EWR", [("champion-0", 0), ("champion-1", 0)])
    assert (again.accepted, again.duplicates, again.conflicts) == (0, ["champion-0"], ["champion-1"])
    assert record_feedback(engine, "EWR", [("bad", 1)]).unscored == ["bad"]
    assert labels_by_key(engine, "EWR", since=0) == {"k1": 2}

    stats = arm_stats(engine, "EWR", since=0)
    champion, canary = stats["champion"], stats["canary"]
    losses = [-math.log(0.8), -math.log(0.8)]
    assert (champion.predictions, champion.labelled, champion.errors) == (4, 2, 0)
    assert champion.loss_mean == pytest.approx(np.mean(losses))
    assert champion.loss_var == pytest.approx(np.var(losses, ddof=1), abs=1e-12)
    assert canary.error_rate == 1.0 and canary.labelled == 0 and canary.loss_mean is None


def test_stats_cover_only_the_window(engine):
    record_predictions(engine, _records("champion", "1", np.linspace(0.1, 0.9, 100), 0, 10.0))
    stats = arm_stats(engine, "EWR", since=50, until=80)["champion"]
    assert stats.predictions == 30
    assert stats.p95_latency_ms == pytest.approx(np.percentile([10.0 + i % 10 for i in range(50, 80)], 95))
    assert arm_stats(engine, "JFK", since=0) == {}


def test_strata_split_the_log_at_the_boundaries_in_one_pass(engine):
    record_predictions(engine, _records("champion", "1", np.full(100, 0.3), 0, 10.0))
    record_predictions(engine, _records("canary", "2", np.full(40, 0.6), 50, 10.0))
    record_feedback(engine, "EWR", [(f"canary-{i}", 1) for i in range(40)])
    strata = stratified_arm_stats(engine, "EWR", [0, 50, 70])
    assert [{v: s.predictions for v, s in stratum.items()} for stratum in strata] == [
        {"champion": 50},
        {"champion": 20, "canary": 20},
        {"champion": 30, "canary": 20},
    ]
    assert strata[2]["canary"].labelled == 20 and strata[2]["canary"].loss_mean == pytest.approx(-math.log(0.6))
    assert all(s.p95_latency_ms is None for stratum in strata for s in stratum.values())
    with pytest.raises(ValueError, match="ascending"):
        stratified_arm_stats(engine, "EWR", [50, 0])
