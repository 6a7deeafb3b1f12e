"""The live quality gate on a running canary, on a real SQLite serving database and MLflow registry."""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient

from domainflow.monitoring.canary_guard import guard_running_canary
from domainflow.monitoring.reference import Reference
from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import CHALLENGER, CHAMPION
from domainflow.store.database import open_database
from domainflow.store.prediction_log import PredictionRecord, record_feedback, record_predictions
from domainflow.store.promotions import ROLLED_BACK, claim_promotion, read_promotion
from domainflow.store.rollouts import Arm, read_rollout, set_rollout

from .test_check import CONFIG, _rows

MODEL = CONFIG.registered_model_name("EWR")


@pytest.fixture
def world(tmp_path):
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri)
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, source=(tmp_path / "model").as_uri())
    client.set_registered_model_alias(MODEL, CHAMPION, "1")
    client.set_registered_model_alias(MODEL, CHALLENGER, "2")
    engine = open_database(f"sqlite:///{tmp_path}/serving.db")
    reference = Reference("EWR", "1", _rows(3_000, 0).drop(columns=["at"]), _rows(2_000, 1), data_matches=True)
    return tracking_uri, engine, reference


def _canary_traffic(engine, rows: int, shuffled: bool) -> None:
    frame = _rows(rows, 7)
    if shuffled:  # the canary's scores no longer follow the labels
        frame["score"] = frame["score"].sample(frac=1.0, random_state=0).to_numpy()
    features = frame[["a", "b", "c", "d", "k"]].to_dict("records")
    record_predictions(engine, [
        PredictionRecord(f"c{i}", "EWR", "canary", "2", float(score), 4.0, time.time(), features=f,
                         event_time=at.timestamp())
        for i, (score, f, at) in enumerate(zip(frame["score"], features, frame["at"], strict=True))
    ])  # fmt: skip
    record_feedback(engine, "EWR", [(f"c{i}", int(y)) for i, y in enumerate(frame["label"])])


def _model(tracking_uri, engine) -> DomainModel:
    return DomainModel(domain="EWR", name=MODEL, tracking_uri=tracking_uri, engine=engine)


def _start_canary(engine) -> None:
    claim_promotion(engine, "EWR", "2", "1", "controller", lease_seconds=60, now=time.time())
    set_rollout(engine, "EWR", MODEL, [Arm("champion", "1", 0.9), Arm("canary", "2", 0.1)], "canary step 2", "test")


def test_a_canary_failing_the_quality_tests_is_rolled_back(world):
    tracking_uri, engine, reference = world
    _start_canary(engine)
    _canary_traffic(engine, 600, shuffled=True)

    guard = guard_running_canary(_model(tracking_uri, engine), CONFIG, reference, actor="monitor")

    assert (guard.version, guard.verdict) == ("2", "rolled back") and "live quality gate" in guard.reason
    assert read_promotion(engine, "EWR").status == ROLLED_BACK
    assert read_rollout(engine, "EWR").arms == (Arm("champion", "1", 1.0),)
    aliases = MlflowClient(tracking_uri).get_registered_model(MODEL).aliases
    assert str(aliases.get(CHAMPION)) == "1" and CHALLENGER not in aliases


def test_a_canary_passing_or_without_enough_labels_keeps_rolling_out(world):
    tracking_uri, engine, reference = world
    assert guard_running_canary(_model(tracking_uri, engine), CONFIG, reference, "monitor").verdict == "none running"
    _start_canary(engine)
    _canary_traffic(engine, 100, shuffled=True)  # under monitoring.min_labelled (200)
    assert guard_running_canary(_model(tracking_uri, engine), CONFIG, reference, "monitor").verdict == "too few labels"


def test_a_canary_as_good_as_its_reference_passes(world):
    tracking_uri, engine, reference = world
    _start_canary(engine)
    _canary_traffic(engine, 600, shuffled=False)
    guard = guard_running_canary(_model(tracking_uri, engine), CONFIG, reference, "monitor")
    assert (guard.version, guard.verdict) == ("2", "passed")
    assert read_promotion(engine, "EWR").status == "running"
