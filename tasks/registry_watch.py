"""The registry watch's task: find challengers not yet announced and announce them as events."""

from __future__ import annotations

from prefect import task
from prefect.events import emit_event
from prefect.logging import get_run_logger

from domainflow.config import PipelineConfig
from domainflow.monitoring.events import CHALLENGER_SET, domain_resource
from domainflow.registry.watch import new_challengers
from domainflow.store.database import open_database

from .policies import IO_RETRY_DELAYS, retry_unless_user_error


@task(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_unless_user_error)
def announce_new_challengers(tracking_uri: str, database_url: str, config: PipelineConfig) -> list[str]:
    """Emit domainflow.registry.challenger_set once per new challenger; returns "DOMAIN vN" of each."""
    models = {domain: config.registered_model_name(domain) for domain in config.domains.values or []}
    announced = []
    for found in new_challengers(tracking_uri, open_database(database_url), models):
        payload = {"model_name": found.model_name, "version": found.version, "champion": found.champion}
        emit_event(event=CHALLENGER_SET, resource=domain_resource(config.name, found.domain), payload=payload)
        get_run_logger().info("announced %s challenger v%s (champion v%s)", found.domain, found.version,
                              found.champion)  # fmt: skip
        announced.append(f"{found.domain} v{found.version}")
    return announced
