"""The registry watch on a real SQLite registry and serving database: each new challenger is announced once."""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient

from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import CHALLENGER, CHAMPION
from domainflow.registry.watch import announce_new_challengers
from domainflow.store.announcements import announced
from domainflow.store.database import open_database
from domainflow.store.promotions import claim_promotion

MODELS = {"EWR": "flight-delay-EWR", "JFK": "flight-delay-JFK"}


def new_challengers(tracking_uri, engine, models: dict[str, str]) -> list:
    """What the watch announces for `models` (domain -> name): each one passed to the callback as returned."""
    told = []
    found = announce_new_challengers(
        [DomainModel(domain, name, tracking_uri, engine) for domain, name in models.items()], told.append
    )
    assert told == found
    return found


@pytest.fixture
def registry(tmp_path):
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri)
    for name in MODELS.values():
        client.create_registered_model(name)
        for _ in range(3):
            client.create_model_version(name, source=(tmp_path / "model").as_uri())
        client.set_registered_model_alias(name, CHAMPION, "1")
    return tracking_uri, client, open_database(f"sqlite:///{tmp_path}/serving.db")


def test_a_challenger_set_by_hand_is_announced_once(registry):
    tracking_uri, client, engine = registry
    assert new_challengers(tracking_uri, engine, MODELS) == []  # champions only: nothing to promote

    client.set_registered_model_alias("flight-delay-EWR", CHALLENGER, "2")
    [found] = new_challengers(tracking_uri, engine, MODELS)
    assert (found.domain, found.version, found.champion) == ("EWR", "2", "1")
    assert new_challengers(tracking_uri, engine, MODELS) == []  # announced already
    assert announced(engine, "EWR") == ["2"]

    # A newer challenger is a new announcement; a challenger equal to the champion is none.
    client.set_registered_model_alias("flight-delay-EWR", CHALLENGER, "3")
    client.set_registered_model_alias("flight-delay-JFK", CHALLENGER, "1")
    assert [(f.domain, f.version) for f in new_challengers(tracking_uri, engine, MODELS)] == [("EWR", "3")]


def test_a_version_rolling_out_or_already_promoted_is_left_alone(registry):
    tracking_uri, client, engine = registry
    client.set_registered_model_alias("flight-delay-JFK", CHALLENGER, "2")
    claim_promotion(engine, "JFK", "2", "1", "someone", lease_seconds=60, now=time.time())
    assert new_challengers(tracking_uri, engine, MODELS) == []
    assert announced(engine, "JFK") == []


def test_a_domain_without_a_registered_model_is_skipped(registry, tmp_path):
    tracking_uri, _, engine = registry
    assert new_challengers(tracking_uri, engine, {"LGA": "flight-delay-LGA"}) == []
