"""Retraining tasks: decide whether and on which window a domain is retrained."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.logging import get_run_logger

from domainflow.config import PipelineConfig
from domainflow.registry import aliases
from domainflow.store.database import open_database
from domainflow.store.promotions import RUNNING, read_promotion
from domainflow.training import retraining

from .policies import IO_RETRY_DELAYS, retry_unless_user_error


@task(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_unless_user_error)
def plan_retraining(
    tracking_uri: str, database_url: str, domain: str, config: PipelineConfig, until: datetime | None
) -> retraining.RetrainingWindow:
    """The window to retrain on; no split while a canary runs or a challenger waits (it answers the event first)."""
    engine = open_database(database_url)
    promotion = read_promotion(engine, domain)
    if promotion is not None and promotion.status == RUNNING:
        return retraining.RetrainingWindow(None, None, f"v{promotion.version} is rolling out; retrain after it ends")
    pending = aliases.pending_challenger(tracking_uri, config.registered_model_name(domain))
    if pending is not None:
        note = f"challenger v{pending[0]} awaits its canary; it is the answer to this event"
        return retraining.RetrainingWindow(None, None, note)
    window = retraining.retraining_window(config.split, until or retraining.labelled_until(engine, domain))
    if window.split is not None:
        done = retraining.version_trained_on(tracking_uri, config.registered_model_name(domain), window.split)
        if done is not None:
            note = f"v{done} was trained on this window already ({window.note}); retrain when new labels move it"
            window = retraining.RetrainingWindow(window.labelled_until, None, note)
    get_run_logger().info("retraining domain=%s: %s", domain, window.note)
    return window
