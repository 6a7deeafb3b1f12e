"""prefect.yaml's deployments as Python objects, to serve from one process with no work pool or worker.

Same names, schedules, event triggers and concurrency as prefect.yaml (tests/unit/test_prefect_yaml.py
keeps the two equal); every deployment carries the given config as its `config` parameter, so an
environment's overrides reach scheduled and triggered runs alike.
"""

from __future__ import annotations

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Interval

from domainflow.config import PipelineConfig
from domainflow.monitoring.events import CHALLENGER_SET
from domainflow.monitoring.events import RETRAINING_EVENTS as MONITORING_EVENTS

TIMEZONE = "America/New_York"
# prefect.yaml's default domain for a run started from the UI.
EXAMPLE_DOMAIN = "EWR"
# domainflow's events are about one domain: prefect.resource.id = domainflow.domain.<pipeline>.<domain>.
DOMAIN_RESOURCES = {"prefect.resource.id": "domainflow.domain.*"}
# Rendered by the server when the trigger fires (a plain `{{ }}` string is Prefect's template syntax).
EVENT_DOMAIN = "{{ event.resource['domainflow.domain'] }}"


def one_at_a_time() -> ConcurrencyLimitConfig:
    """A second triggered run waits for the first instead of being dropped."""
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def build_deployments(config: PipelineConfig) -> list[RunnerDeployment]:
    from domainflow.flows.lifecycle import run_lifecycle
    from domainflow.flows.monitoring import monitor_domains
    from domainflow.flows.promotion import promote_challenger
    from domainflow.flows.registry_watch import watch_registry
    from domainflow.flows.retraining import retrain_domain
    from domainflow.flows.training import train_domain_model

    parameters = {"config": config.model_dump(mode="json")}
    for_domain = {"domain": EXAMPLE_DOMAIN, **parameters}
    common = {"entrypoint_type": EntrypointType.MODULE_PATH}
    return [
        run_lifecycle.to_deployment(
            "weekly", schedules=[Cron("0 5 * * 1", timezone=TIMEZONE)], parameters=parameters,
            tags=["domainflow", "training"], **common,
        ),
        train_domain_model.to_deployment(
            "on-demand", parameters=for_domain, tags=["domainflow", "training"], **common,
        ),
        promote_challenger.to_deployment(
            "promote", parameters=for_domain, tags=["domainflow", "promotion"], concurrency_limit=one_at_a_time(),
            triggers=[DeploymentEventTrigger(
                match=DOMAIN_RESOURCES, expect={CHALLENGER_SET}, parameters={"domain": EVENT_DOMAIN},
            )],
            **common,
        ),
        monitor_domains.to_deployment(
            "monitor", schedules=[Cron("0 * * * *", timezone=TIMEZONE)], parameters=parameters,
            tags=["domainflow", "monitoring"], **common,
        ),
        retrain_domain.to_deployment(
            "retrain", parameters=for_domain, tags=["domainflow", "training", "retraining"],
            concurrency_limit=one_at_a_time(),
            triggers=[DeploymentEventTrigger(
                match=DOMAIN_RESOURCES, expect=set(MONITORING_EVENTS),
                # `| string`: Prefect renders a lone expression as JSON, and its encoder has no UUIDs.
                parameters={"domain": EVENT_DOMAIN, "reason": "{{ event.event }}",
                            "event_id": "{{ event.id | string }}"},
            )],
            **common,
        ),
        watch_registry.to_deployment(
            "registry-watch", schedules=[Interval(60)], parameters=parameters, tags=["domainflow", "promotion"],
            **common,
        ),
    ]  # fmt: skip


def serve_deployments(config: PipelineConfig) -> None:
    """Serve every deployment from this process until interrupted (Prefect's `serve`)."""
    serve(*build_deployments(config))
