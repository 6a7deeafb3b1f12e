"""The registry watch's task: find challengers not yet announced and announce them as events."""

from __future__ import annotations

from prefect import task
from prefect.events import emit_event
from prefect.logging import get_run_logger

from domainflow.config import PipelineConfig
from domainflow.monitoring.events import CHALLENGER_SET, domain_resource
from domainflow.registry import watch
from domainflow.registry.domain_model import DomainModel
from domainflow.settings import Settings

from .policies import RETRY_IO


@task(**RETRY_IO)
def announce_new_challengers(settings: Settings, config: PipelineConfig) -> list[str]:
    """Emit domainflow.registry.challenger_set once per new challenger; returns "DOMAIN vN" of each."""
    models = [DomainModel.open(settings, domain, config.registered_model_name(domain))
              for domain in config.domains.values or []]  # fmt: skip

    def announce(found: watch.NewChallenger) -> None:
        payload = {"model_name": found.model_name, "version": found.version, "champion": found.champion}
        emit_event(event=CHALLENGER_SET, resource=domain_resource(config.name, found.domain), payload=payload)
        get_run_logger().info("announced %s challenger v%s (champion v%s)", found.domain, found.version,
                              found.champion)  # fmt: skip

    return [f"{found.domain} v{found.version}" for found in watch.announce_new_challengers(models, announce)]
