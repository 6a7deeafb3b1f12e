"""monitor_domains: every served domain's champion watched against its training data.

Per domain: rebuild the champion's reference, read its predictions from the log, check drift,
live quality, forecasts and health, publish the Evidently report, guard a running canary,
and emit the events that start retraining (the `retrain` deployment's trigger).
"""

from __future__ import annotations

from prefect import flow

from domainflow.config import PipelineConfig
from domainflow.flows.prepared import prepare_domain
from domainflow.monitoring.summary import MonitoringOutcome
from domainflow.settings import resolve_settings
from domainflow.tasks.monitoring import (
    build_daily_series,
    build_reference,
    check_served_model,
    emit_domain_events,
    find_served_version,
    guard_canary,
    publish_check,
    read_prediction_window,
)


@flow(name="monitor-domain", flow_run_name="monitor-{domain}", log_prints=True)
def monitor_domain(domain: str, config: PipelineConfig = PipelineConfig()) -> MonitoringOutcome:
    settings = resolve_settings()
    record = find_served_version(settings.tracking_uri, domain, config)
    if record is None:
        return MonitoringOutcome(domain=domain, status="not_served", note="the domain has no champion")
    # The reference is the champion's own training data: its recorded config, not today's.
    _, validated, split = prepare_domain(domain, record.config, settings)
    reference = build_reference(settings.tracking_uri, record, domain, validated.valid, split, config)
    window = read_prediction_window(settings.database_url, domain, record.version, config)
    daily = build_daily_series(settings.database_url, domain, record.version, reference, config)
    check = check_served_model(reference, window, daily, config)
    report_uri = publish_check(settings.tracking_uri, settings.artifact_root, settings.database_url, config, check)
    rolled_back = guard_canary(settings.tracking_uri, settings.database_url, domain, config, reference)
    emit_domain_events(check.events)
    return MonitoringOutcome.from_check(check, report_uri).model_copy(update={"canary_rolled_back": rolled_back})


@flow(name="monitor-domains", log_prints=True)
def monitor_domains(
    config: PipelineConfig = PipelineConfig(), domains: list[str] | None = None
) -> list[MonitoringOutcome]:
    """Each domain in `domains` (default: the configured ones) in its own sub-flow run; one failing spares the rest."""
    chosen = domains or config.domains.values
    if not chosen:
        raise ValueError("no domains to monitor: pass `domains` or list them in the config's domains.values")
    outcomes = []
    for domain in chosen:
        state = monitor_domain(domain, config, return_state=True)
        failed = MonitoringOutcome(domain=domain, status="failed", note=state.message or "failed")
        outcomes.append(state.result() if state.is_completed() else failed)
    return outcomes
