"""Monitoring tasks: the served version and its reference, the prediction log, the check, its report and events."""

from __future__ import annotations

import time

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.logging import get_run_logger

from domainflow.config import PipelineConfig
from domainflow.data.prepared import DomainData
from domainflow.monitoring import canary_guard, check, promotion_watch, publish, reference, thresholds, window
from domainflow.monitoring.check import DomainCheck
from domainflow.monitoring.events import DomainEvent
from domainflow.monitoring.reference import Reference, VersionRecord
from domainflow.monitoring.summary import check_markdown
from domainflow.monitoring.thresholds import DriftCalibration
from domainflow.monitoring.window import LogWindow
from domainflow.registry.domain_model import DomainModel
from domainflow.settings import Settings
from domainflow.store.database import open_database
from domainflow.summary import artifact_key

from .policies import CACHED_STAGE, RETRY_IO, flow_run_actor


@task(**RETRY_IO)
def find_served_version(settings: Settings, domain: str, config: PipelineConfig) -> VersionRecord | None:
    """The domain's champion with the config its training run recorded; None when nothing is served."""
    record = reference.find_served_version(settings.tracking_uri, config.registered_model_name(domain))
    get_run_logger().info("domain=%s champion=%s", domain, record.version if record else None)
    return record


@task(cache_policy=CACHED_STAGE, **RETRY_IO)
def build_reference(tracking_uri: str, record: VersionRecord, data: DomainData, config: PipelineConfig) -> Reference:
    """Cached: a version's reference only changes with its data, so each check after the first reuses it."""
    spec = reference.ReferenceSpec(months=config.monitoring.reference_months, rows=config.monitoring.reference_rows)
    built = reference.build_reference(tracking_uri, record, data, spec)
    logger = get_run_logger()
    logger.info("reference domain=%s v%s recent_rows=%d test=%d auc=%.4f log_loss=%.4f importance=%s", data.domain,
                record.version, len(built.train), len(built.test), built.auc, built.log_loss,
                {c: round(v, 4) for c, v in built.importance.items()})  # fmt: skip
    if not built.data_matches:
        logger.warning("domain=%s v%s: the source's rows no longer match the data the version was trained on; the "
                       "reference is rebuilt from the source as it is now", data.domain, record.version)  # fmt: skip
    return built


@task(**RETRY_IO)
def read_prediction_window(database_url: str, domain: str, version: str, config: PipelineConfig) -> LogWindow:
    """The version's latest monitoring.window_rows predictions: the rows the check judges."""
    latest = window.read_prediction_window(open_database(database_url), domain, version, config)
    get_run_logger().info("window domain=%s v%s rows=%d labelled=%d", domain, version, latest.rows,
                          len(latest.labelled))  # fmt: skip
    return latest


@task
def calibrate_drift(served: Reference, latest: LogWindow, config: PipelineConfig) -> DriftCalibration:
    """Drift thresholds for this window's length and for one day, from null windows of the held-back reference."""
    calibration = thresholds.calibrate_drift(served, config, window_rows=latest.rows)
    window, daily = calibration.window, calibration.daily
    logger = get_run_logger()
    logger.info("drift thresholds domain=%s v%s window=%s (%d null windows of %d rows, score > %.3g) daily=%s "
                "(%d null days, score > %.3g) seconds=%.1f", served.domain, served.version, window.kind,
                window.null_windows, latest.rows, window.score_threshold, daily.kind, daily.null_windows,
                daily.score_threshold, calibration.seconds)  # fmt: skip
    for note in calibration.warnings:
        logger.warning("domain=%s v%s drift thresholds fall back to the fixed ones: %s", served.domain,
                       served.version, note)  # fmt: skip
    return calibration


@task(**RETRY_IO)
def build_daily_series(
    database_url: str, served: Reference, config: PipelineConfig, calibration: DriftCalibration
) -> pd.DataFrame:
    """The version's history streamed from the log one day at a time; only the small daily frame leaves the task."""
    started = time.perf_counter()
    daily = check.build_daily_series(open_database(database_url), served, config, calibration)
    get_run_logger().info("daily series domain=%s v%s days=%d rows=%d labelled=%d seconds=%.1f", served.domain,
                          served.version, len(daily), daily["predictions"].sum(), daily["labelled"].sum(),
                          time.perf_counter() - started)  # fmt: skip
    return daily


@task
def check_domain(
    served: Reference, latest: LogWindow, daily: pd.DataFrame, config: PipelineConfig, calibration: DriftCalibration
) -> DomainCheck:
    checked = check.check_domain(served, latest, daily, config, calibration)
    get_run_logger().info("check domain=%s v%s status=%s figures=%s events=%s", checked.domain, checked.version,
                          checked.status, checked.figures(), [e.name for e in checked.events])  # fmt: skip
    return checked


@task(**RETRY_IO)
def publish_check(settings: Settings, config: PipelineConfig, checked: DomainCheck) -> str | None:
    """The Evidently report and figures to an MLflow run, the verdict to the database, a summary to Prefect."""
    report_uri = publish.publish_check(settings, config, checked)
    create_markdown_artifact(check_markdown(checked, report_uri),
                             key=artifact_key("monitoring", config.name, checked.domain),
                             description=f"{checked.domain} monitoring: {checked.status}")  # fmt: skip
    return report_uri


@task(**RETRY_IO)
def guard_running_canary(settings: Settings, domain: str, config: PipelineConfig) -> str | None:
    """The live quality check on a running canary; returns the version it rolled back, if any."""
    model = DomainModel.open(settings, domain, config.registered_model_name(domain))
    guard = canary_guard.guard_running_canary(model, config, flow_run_actor())
    log = get_run_logger().warning if guard.verdict == "rolled back" else get_run_logger().info
    log("canary domain=%s v%s live quality: %s %s", domain, guard.version, guard.verdict, guard.reason)
    return guard.version if guard.verdict == "rolled back" else None


@task(**RETRY_IO)
def watch_promoted_champion(settings: Settings, domain: str, config: PipelineConfig) -> str | None:
    """The post-promotion watch of a newly promoted champion; returns the version it reverted, if any."""
    model = DomainModel.open(settings, domain, config.registered_model_name(domain))
    watch = promotion_watch.watch_promoted_champion(model, config, flow_run_actor())
    if watch.version is not None:
        log = get_run_logger().warning if watch.verdict == "reverted" else get_run_logger().info
        log("promotion watch domain=%s v%s against v%s: %s %s", domain, watch.version, watch.replaced,
            watch.verdict, watch.reason)  # fmt: skip
    return watch.version if watch.verdict == "reverted" else None


@task
def emit_domain_events(events: list[DomainEvent]) -> dict[str, str]:
    """Each event to Prefect's event stream, where deployment triggers pick it up; returns their ids by name."""
    ids = {}
    for event in events:
        emitted = emit_event(event=event.name, resource=event.resource, payload=event.json_payload())
        get_run_logger().info("event %s domain=%s payload=%s", event.name, event.domain, event.payload)
        if emitted is not None:
            ids[event.name] = str(emitted.id)
    return ids
