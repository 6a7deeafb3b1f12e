"""Retraining tasks: decide whether and on which window a domain is retrained."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.logging import get_run_logger

from domainflow.config import PipelineConfig
from domainflow.registry.domain_model import DomainModel
from domainflow.retraining import plan
from domainflow.settings import Settings

from .policies import RETRY_IO, flow_run_actor


@task(**RETRY_IO)
def plan_retraining(
    settings: Settings,
    domain: str,
    config: PipelineConfig,
    until: datetime | None,
    reason: str,
    event_id: str | None = None,
) -> plan.RetrainingWindow:
    """The window to retrain on; no split while a canary runs or a challenger waits (it answers the event first).

    Audited with `reason` and the triggering event's id, as this flow run's.
    """
    trigger = plan.RetrainingTrigger(reason=reason, actor=flow_run_actor(), event_id=event_id)
    model = DomainModel.open(settings, domain, config.registered_model_name(domain))
    window = plan.plan_retraining(model, config, trigger, until)
    get_run_logger().info("retraining domain=%s: %s", domain, window.note)
    return window
