"""The post-promotion watch, on a real SQLite serving database and MLflow registry.

The replaced version's model is the test's own scoring function of the logged features (what
`loaded_version` would load from its pyfunc files): the champion served the logged scores.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from domainflow.monitoring.promotion_watch import watch_promoted_champion
from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import CHAMPION, PREVIOUS_CHAMPION, TAG, current_alias_version
from domainflow.store.audit import read_audit, verify_audit
from domainflow.store.database import open_database
from domainflow.store.prediction_log import PredictionRecord, record_feedback, record_predictions
from domainflow.store.promotions import PROMOTED, REVERTED, claim_promotion, end_promotion, mark_settled, read_promotion
from domainflow.store.rollouts import Arm, read_rollout, set_rollout

from .test_check import CONFIG, _rows

MODEL = CONFIG.registered_model_name("EWR")
# `_rows` spreads its rows over 40 days: the watch looks at all of them.
WATCHED = CONFIG.model_copy(update={"canary": CONFIG.canary.model_copy(update={"watch_window_days": 40})})


def two_versions(tmp_path, aliases: dict[str, str]) -> DomainModel:
    """v1 and v2 of the model in a real SQLite registry with `aliases`, and an empty serving database."""
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri)
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, source=(tmp_path / "model").as_uri())
    for alias, version in aliases.items():
        client.set_registered_model_alias(MODEL, alias, version)
    engine = open_database(f"sqlite:///{tmp_path}/serving.db")
    return DomainModel(domain="EWR", name=MODEL, tracking_uri=tracking_uri, engine=engine)


@pytest.fixture
def model(tmp_path) -> DomainModel:
    """v1 replaced by v2, promoted an hour ago: the aliases, the rollout and the promotion as a canary leaves them."""
    model = two_versions(tmp_path, {CHAMPION: "2", PREVIOUS_CHAMPION: "1"})
    engine = model.engine
    promoted = time.time() - 3600
    claim_promotion(engine, "EWR", "2", "1", "controller", lease_seconds=60, now=promoted - 60)
    end_promotion(engine, "EWR", PROMOTED, "promote: passed every step", "controller", promoted)
    mark_settled(engine, "EWR", "2", promoted)
    set_rollout(engine, "EWR", MODEL, [Arm("champion", "2", 1.0)], "v2: promoted", "controller")
    return model


def _good_scores(rows: pd.DataFrame) -> np.ndarray:
    """The replaced version: the scores `_rows` draws its labels from."""
    return 1 / (1 + np.exp(-(rows["a"].to_numpy(dtype=float) + 0.5 * rows["b"].to_numpy(dtype=float))))


@contextmanager
def _replaced(tracking_uri: str, name: str, version: str):
    assert (name, version) == (MODEL, "1"), "the watch loads the version the promotion replaced"
    yield _good_scores


def _served(engine, rows: int, seed: int, champion: str) -> None:
    """`rows` labelled predictions served by v2 as champion: as good as v1 ("equal", its own noise) or shuffled."""
    frame = _rows(rows, seed)
    scores = frame["score"].to_numpy()
    if champion == "shuffled":
        scores = frame["score"].sample(frac=1.0, random_state=seed).to_numpy()
    elif champion == "equal":
        noise = np.random.default_rng(seed + 1).normal(0, 0.2, rows)
        scores = 1 / (1 + np.exp(-(np.log(scores / (1 - scores)) + noise)))
    features = frame[["a", "b", "c", "d", "k"]].to_dict("records")
    ids = [f"{seed}-{i}" for i in range(rows)]
    record_predictions(engine, [
        PredictionRecord(request_id, "EWR", "champion", "2", float(score), 4.0, time.time(), features=f,
                         event_time=at.timestamp())
        for request_id, score, f, at in zip(ids, scores, features, frame["at"], strict=True)
    ])  # fmt: skip
    record_feedback(engine, "EWR", [(request_id, int(y)) for request_id, y in zip(ids, frame["label"], strict=True)])


def test_a_promoted_champion_worse_than_the_version_it_replaced_is_reverted(model):
    _served(model.engine, 4_000, 0, "shuffled")

    watch = watch_promoted_champion(model, WATCHED, "monitor", load=_replaced)

    assert watch.verdict == "reverted", watch
    assert watch.figures["ci_low"] > WATCHED.canary.quality_margin
    assert current_alias_version(model.client, MODEL, CHAMPION) == "1"
    assert current_alias_version(model.client, MODEL, PREVIOUS_CHAMPION) is None
    assert [(a.version, a.weight) for a in read_rollout(model.engine, "EWR").arms] == [("1", 1.0)]
    promotion = read_promotion(model.engine, "EWR")
    assert (promotion.status, promotion.settled) == (REVERTED, True)
    tags = model.client.get_model_version(MODEL, "2").tags
    assert tags[f"{TAG}rollout"] == "reverted" and "post-promotion watch" in tags[f"{TAG}rollout_reason"]
    rollbacks = read_audit(model.engine, "EWR", action="rollback")
    assert rollbacks[-1].subject == "v2" and rollbacks[-1].after["champion"] == "1"
    assert verify_audit(model.engine).ok
    # Once reverted there is nothing left to watch, and a second look moves nothing.
    assert watch_promoted_champion(model, WATCHED, "monitor", load=_replaced).verdict == "not watched"


def test_a_champion_as_good_as_the_one_it_replaced_is_kept_over_many_seeds(model):
    reverted = 0
    for seed in range(20):
        with model.engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM feedback")
            connection.exec_driver_sql("DELETE FROM predictions")
        _served(model.engine, 4_000, 100 + seed, "equal")
        reverted += watch_promoted_champion(model, WATCHED, "monitor", load=_replaced).verdict == "reverted"
    assert reverted == 0
    assert current_alias_version(model.client, MODEL, CHAMPION) == "2"


def test_the_watch_waits_for_labels_and_ends_after_its_days(model):
    _served(model.engine, 100, 0, "shuffled")
    assert watch_promoted_champion(model, WATCHED, "monitor", load=_replaced).verdict == "too few labels"

    _served(model.engine, 4_000, 1, "shuffled")
    later = WATCHED.model_copy(update={"canary": WATCHED.canary.model_copy(update={"watch_days": 1 / 48})})
    assert watch_promoted_champion(model, later, "monitor", load=_replaced).verdict == "not watched"
    off = WATCHED.model_copy(update={"canary": WATCHED.canary.model_copy(update={"watch_days": 0})})
    assert watch_promoted_champion(model, off, "monitor", load=_replaced).verdict == "not watched"
    assert current_alias_version(model.client, MODEL, CHAMPION) == "2"


def test_a_champion_an_operator_moved_since_is_not_watched(model):
    model.client.set_registered_model_alias(MODEL, CHAMPION, "1")
    _served(model.engine, 4_000, 0, "shuffled")

    watch = watch_promoted_champion(model, WATCHED, "monitor", load=_replaced)

    assert (watch.verdict, current_alias_version(model.client, MODEL, CHAMPION)) == ("superseded", "1")
    assert read_promotion(model.engine, "EWR").status == PROMOTED
