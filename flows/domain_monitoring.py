"""monitor_domain: one served domain's champion watched against its recent labelled months.

Watch a newly promoted champion against the version it replaced (and revert it when it is worse
on the same rows), then rebuild the champion's reference, read its predictions from the log, calibrate the drift
thresholds on the reference, check drift, live quality, forecasts and health, publish the
Evidently report, guard a running canary, and emit the events that start retraining (the
`retrain` deployment's trigger).
"""

from __future__ import annotations

from prefect import flow

from domainflow.config import PipelineConfig
from domainflow.monitoring.summary import MonitoringOutcome
from domainflow.settings import resolve_settings
from domainflow.tasks.data import fingerprint_source, load_source, prepare_domain
from domainflow.tasks.monitoring import (
    build_daily_series,
    build_reference,
    calibrate_drift,
    check_domain,
    emit_domain_events,
    find_served_version,
    guard_running_canary,
    publish_check,
    read_prediction_window,
    watch_promoted_champion,
)


@flow(name="monitor-domain", flow_run_name="monitor-{domain}", log_prints=True)
def monitor_domain(domain: str, config: PipelineConfig = PipelineConfig()) -> MonitoringOutcome:
    settings = resolve_settings()
    # First: a reverted champion is not the one to check.
    reverted = watch_promoted_champion(settings, domain, config)
    record = find_served_version(settings, domain, config)
    if record is None:
        return MonitoringOutcome(domain=domain, status="not_served", note="the domain has no champion")
    # The reference is the champion's own training data: its recorded config, not today's.
    trained_on = record.config
    fingerprint = fingerprint_source(trained_on.data.source)
    frame = load_source(trained_on.data.source, fingerprint, trained_on.source_columns())
    data = prepare_domain(frame, domain, fingerprint, trained_on, settings.quarantine_root)
    reference = build_reference(settings.tracking_uri, record, data, config)
    window = read_prediction_window(settings.database_url, domain, record.version, config)
    calibration = calibrate_drift(reference, window, config)
    daily = build_daily_series(settings.database_url, reference, config, calibration)
    check = check_domain(reference, window, daily, config, calibration)
    report_uri = publish_check(settings, config, check)
    rolled_back = guard_running_canary(settings, domain, config)
    event_ids = emit_domain_events(check.events)
    return MonitoringOutcome.from_check(
        check, report_uri, canary_rolled_back=rolled_back, event_ids=event_ids, champion_reverted=reverted
    )
