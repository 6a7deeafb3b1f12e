"""Retraining tasks: decide whether and on which window a domain is retrained."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.logging import get_run_logger

from domainflow.config import PipelineConfig
from domainflow.registry.domain_model import DomainModel
from domainflow.retraining import plan
from domainflow.settings import Settings

from .policies import RETRY_IO


@task(**RETRY_IO)
def plan_retraining(
    settings: Settings, domain: str, config: PipelineConfig, until: datetime | None
) -> plan.RetrainingWindow:
    """The window to retrain on; no split while a canary runs or a challenger waits (it answers the event first)."""
    window = plan.plan_retraining(DomainModel.open(settings, domain, config.registered_model_name(domain)), config,
                                  until)  # fmt: skip
    get_run_logger().info("retraining domain=%s: %s", domain, window.note)
    return window
