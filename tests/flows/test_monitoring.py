"""Monitoring on the default data: the EWR champion's late months drift, a window of its training months does not.

The prediction log is filled with the champion's real scores on the rows (as the server would log
them, with their labels as feedback), then the monitoring flow runs against it under Prefect.
"""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow import MlflowClient

from domainflow.data import domains, sources, validation
from domainflow.data.split import split_by_time
from domainflow.data.validation import LABEL_COLUMN
from domainflow.monitoring.events import DRIFT_DETECTED
from domainflow.registry.champion import score_version
from domainflow.registry.mlflow_registry import CHALLENGER
from domainflow.serving.replay import encode_records
from domainflow.settings import resolve_settings
from domainflow.store.announcements import announced
from domainflow.store.database import open_database
from domainflow.store.prediction_log import PredictionRecord, record_feedback, record_predictions

from .conftest import ewr_config

# The EWR story is trained once per test process: its tests share one pytest-xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ewr-story")]


@pytest.fixture(scope="module")
def ewr_split(ewr_story):
    config = ewr_config(seed=42)
    frame = sources.load_source(config.data.source, config.source_columns())
    rows = domains.filter_domain(frame, config.domains.column, "EWR")
    outcome = validation.validate_rows(rows, config.data, config.validation)
    return split_by_time(outcome.valid, config.data.timestamp, LABEL_COLUMN, config.split)


def _log(database_url: str, rows: pd.DataFrame, version: str, config) -> None:
    """The champion's scores for `rows`, logged with their event times, and their labels as feedback."""
    tracking_uri = resolve_settings().tracking_uri
    scores = score_version(tracking_uri, config.registered_model_name("EWR"), version, rows[config.data.features])
    features = encode_records(rows, config.data.numeric_features, config.data.categorical_features)
    times = pd.to_datetime(rows[config.data.timestamp]).dt.tz_localize("UTC")
    records = [
        PredictionRecord(
            f"r{i}", "EWR", "champion", version, float(score), 3.0, 1.0e9 + i, features=f, event_time=at.timestamp()
        )  # fmt: skip
        for i, (score, f, at) in enumerate(zip(scores.scores, features, times, strict=True))
    ]
    engine = open_database(database_url)
    record_predictions(engine, records)
    record_feedback(engine, "EWR", [(f"r{i}", int(y)) for i, y in enumerate(rows[LABEL_COLUMN])])


def _monitor(ewr_home, monkeypatch, tmp_path, rows, name):
    from domainflow.flows.domain_monitoring import monitor_domain

    config = ewr_config(seed=42)
    version = MlflowClient(resolve_settings().tracking_uri).get_model_version_by_alias(
        config.registered_model_name("EWR"), "champion").version  # fmt: skip
    database_url = f"sqlite:///{tmp_path}/{name}.db"
    monkeypatch.setenv("DOMAINFLOW_DATABASE_URL", database_url)
    _log(database_url, rows, version, config)
    return monitor_domain("EWR", config), database_url


def test_the_late_months_drift_and_raise_the_retrain_only_with_evidence(ewr_home, ewr_split, monkeypatch, tmp_path):
    late = ewr_split.holdout.loc[ewr_split.holdout["scheduled_departure"] >= "2013-10-01"]
    outcome, database_url = _monitor(ewr_home, monkeypatch, tmp_path, late, "late")

    assert outcome.status in ("drift", "degraded"), outcome
    assert outcome.threshold_kind == "calibrated" and outcome.drift_score > outcome.drift_score_threshold
    # Issue 16: the retraining event needs evidence that the model is, or will be, worse as well.
    evidence = outcome.quality_passed is False or any(w.startswith(("log_loss", "auc")) for w in outcome.early_warnings)
    assert (DRIFT_DETECTED in outcome.events) == evidence, outcome
    assert outcome.report_uri and outcome.report_uri.endswith("evidently_report.html")
    assert outcome.health is not None and len(outcome.daily) > 30


def test_a_window_from_the_training_months_does_not_drift(ewr_home, ewr_split, monkeypatch, tmp_path):
    training_months = ewr_split.train.sample(n=8_000, random_state=1).sort_values("scheduled_departure")
    outcome, _ = _monitor(ewr_home, monkeypatch, tmp_path, training_months, "training-months")

    assert outcome.status == "ok", outcome
    assert outcome.events == [] and outcome.drift_share < 0.5 and outcome.quality_passed


def test_the_registry_watch_announces_a_challenger_set_by_hand_once(ewr_story, ewr_home, monkeypatch, tmp_path):
    from domainflow.flows.registry_watch import watch_registry

    config = ewr_config(seed=42)
    monkeypatch.setenv("DOMAINFLOW_DATABASE_URL", f"sqlite:///{tmp_path}/watch.db")
    client = MlflowClient(resolve_settings().tracking_uri)
    name = config.registered_model_name("EWR")
    before = client.get_model_version_by_alias(name, CHALLENGER).version
    try:
        client.set_registered_model_alias(name, CHALLENGER, ewr_story.worse.version)  # by hand, as in the MLflow UI
        assert watch_registry(config) == [f"EWR v{ewr_story.worse.version}"]
        assert watch_registry(config) == []
        assert announced(open_database(resolve_settings().database_url), "EWR") == [ewr_story.worse.version]
    finally:
        client.set_registered_model_alias(name, CHALLENGER, before)
