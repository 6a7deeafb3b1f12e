"""A retrain's window is refused when its test month lies inside what the champion trained or validated on;
every retrain asked for is audited."""

from __future__ import annotations

from datetime import datetime

from domainflow.config import PipelineConfig, SplitConfig
from domainflow.monitoring.events import DRIFT_DETECTED
from domainflow.registry.domain_model import DomainModel
from domainflow.retraining.plan import RetrainingTrigger, clear_of_champion, plan_retraining, retraining_window
from domainflow.store.audit import read_audit, verify_audit
from domainflow.store.database import open_database

CHAMPION = SplitConfig(train_until=datetime(2013, 9, 1), validation_until=datetime(2013, 10, 1),
                       test_until=datetime(2013, 11, 1))  # fmt: skip
CURRENT = SplitConfig()  # train to July, validate July, test August


def test_a_test_window_inside_the_champions_validation_is_refused_naming_the_dates():
    early = retraining_window(CURRENT, datetime(2013, 10, 15))  # tests 2013-09-14 to 2013-10-15 (a 31-day test window)
    refused = clear_of_champion(early, CHAMPION, "4")
    assert refused.split is None
    assert "would start 2013-09-14, inside what champion v4 trained and validated on (to 2013-10-01)" in refused.note
    assert "retrain once labels reach 2013-11-01" in refused.note


def test_a_test_window_after_the_champions_windows_goes_ahead():
    later = retraining_window(CURRENT, datetime(2013, 11, 1))  # tests 2013-10-01 to 2013-11-01
    assert clear_of_champion(later, CHAMPION, "4") == later
    assert clear_of_champion(later, None) == later


def test_each_retrain_asked_for_is_audited_with_its_event_and_the_window_or_why_there_is_none(mlflow_store, tmp_path):
    engine = open_database(f"sqlite:///{tmp_path}/state.db")
    model = DomainModel(domain="EWR", name="flight-delay-EWR", tracking_uri=mlflow_store[0], engine=engine)
    event = RetrainingTrigger(reason=DRIFT_DETECTED, actor="prefect-flow-run/9", event_id="3f0c2d4e-event")

    nothing = plan_retraining(model, PipelineConfig(), event)  # no labelled predictions in the log yet
    window = plan_retraining(model, PipelineConfig(), RetrainingTrigger("requested", "cli"), datetime(2013, 11, 1))

    assert nothing.split is None and window.split.test_until == datetime(2013, 11, 1)
    triggered, requested = read_audit(engine, "EWR")
    assert (triggered.action, triggered.subject, triggered.actor) == ("retrain", "3f0c2d4e-event", "prefect-flow-run/9")
    assert triggered.after == {"split": None, "labelled_until": None, "event_id": "3f0c2d4e-event"}
    assert triggered.reason == f"{DRIFT_DETECTED}: no labelled predictions in the log: nothing new to train on"
    assert (requested.subject, requested.actor, requested.after["event_id"]) == ("request", "cli", None)
    assert requested.after["split"] == window.split.model_dump(mode="json")
    assert requested.reason == f"requested: {window.note}"
    assert verify_audit(engine).ok
