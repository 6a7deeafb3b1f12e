"""monitor_domains: every served domain's champion watched, each in its own `monitor_domain` sub-flow run."""

from __future__ import annotations

from prefect import flow

from domainflow.config import PipelineConfig
from domainflow.flows.domain_monitoring import monitor_domain
from domainflow.monitoring.summary import MonitoringOutcome


@flow(name="monitor-domains", log_prints=True)
def monitor_domains(
    config: PipelineConfig = PipelineConfig(), domains: list[str] | None = None
) -> list[MonitoringOutcome]:
    """Each domain in `domains` (default: the configured ones); one failing spares the rest."""
    chosen = domains or config.domains.values
    if not chosen:
        raise ValueError("no domains to monitor: pass `domains` or list them in the config's domains.values")
    states = [monitor_domain(domain, config, return_state=True) for domain in chosen]
    return [MonitoringOutcome.from_result(domain, state.result(raise_on_failure=False))
            for domain, state in zip(chosen, states, strict=True)]  # fmt: skip
