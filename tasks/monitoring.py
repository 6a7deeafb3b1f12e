"""Monitoring tasks: the served version and its reference, the prediction log, the check, its report and events."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from domainflow.config import PipelineConfig
from domainflow.data.split import TimeSplit
from domainflow.monitoring import reference as references
from domainflow.monitoring.canary_guard import guard_running_canary
from domainflow.monitoring.check import DomainCheck, check_domain, daily_series
from domainflow.monitoring.events import DomainEvent
from domainflow.monitoring.summary import check_markdown
from domainflow.monitoring.window import LogWindow, read_log, stream_log_days
from domainflow.registry.mlflow_registry import (
    CHAMPION,
    current_alias_version,
    experiment_id_for,
    fluent_tracking_uri,
)
from domainflow.store.checks import record_check
from domainflow.store.database import open_database
from domainflow.summary import artifact_key

from .policies import CACHED_STAGE, IO_RETRY_DELAYS, retry_unless_user_error

_RETRIES = dict(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_unless_user_error)


@task(**_RETRIES)
def find_served_version(tracking_uri: str, domain: str, config: PipelineConfig) -> references.VersionRecord | None:
    """The domain's champion with the config its training run recorded; None when nothing is served."""
    name = config.registered_model_name(domain)
    version = current_alias_version(MlflowClient(tracking_uri), name, CHAMPION)
    get_run_logger().info("domain=%s champion=%s", domain, version)
    return None if version is None else references.version_record(tracking_uri, name, version)


@task(cache_policy=CACHED_STAGE, **_RETRIES)
def build_reference(
    tracking_uri: str,
    record: references.VersionRecord,
    domain: str,
    valid: pd.DataFrame,
    split: TimeSplit,
    config: PipelineConfig,
) -> references.Reference:
    """Cached: a version's reference only changes with its data, so each check after the first reuses it."""
    reference = references.build_reference(tracking_uri, record, domain, valid, split,
                                           config.monitoring.reference_rows, seed=0)  # fmt: skip
    logger = get_run_logger()
    logger.info("reference domain=%s v%s train_sample=%d test=%d auc=%.4f log_loss=%.4f", domain, record.version,
                len(reference.train), len(reference.test), reference.auc, reference.log_loss)  # fmt: skip
    if not reference.data_matches:
        logger.warning("domain=%s v%s: the source's rows no longer match the data the version was trained on; "
                       "the reference is rebuilt from the source as it is now", domain, record.version)  # fmt: skip
    return reference


@task(**_RETRIES)
def read_prediction_window(database_url: str, domain: str, version: str, config: PipelineConfig) -> LogWindow:
    """The version's latest monitoring.window_rows predictions: the rows the check judges."""
    window = read_log(open_database(database_url), domain, config.data.features, version=version,
                      history_days=config.monitoring.history_days,
                      max_rows=config.monitoring.window_rows)  # fmt: skip
    get_run_logger().info("window domain=%s v%s rows=%d labelled=%d", domain, version, window.rows,
                          len(window.labelled))  # fmt: skip
    return window


@task(**_RETRIES)
def build_daily_series(
    database_url: str, domain: str, version: str, reference: references.Reference, config: PipelineConfig
) -> pd.DataFrame:
    """The version's history streamed from the log one day at a time; only the small daily frame leaves the task."""
    started = time.perf_counter()
    days = stream_log_days(open_database(database_url), domain, config.data.features, version=version,
                           history_days=config.monitoring.history_days)  # fmt: skip
    daily = daily_series(reference, days, config)
    get_run_logger().info("daily series domain=%s v%s days=%d rows=%d labelled=%d seconds=%.1f", domain, version,
                          len(daily), daily["predictions"].sum(), daily["labelled"].sum(),
                          time.perf_counter() - started)  # fmt: skip
    return daily


@task
def check_served_model(
    reference: references.Reference, window: LogWindow, daily: pd.DataFrame, config: PipelineConfig
) -> DomainCheck:
    check = check_domain(reference, window, daily, config)
    get_run_logger().info("check domain=%s v%s status=%s figures=%s events=%s", check.domain, check.version,
                          check.status, check.figures(), [e.name for e in check.events])  # fmt: skip
    return check


@task(**_RETRIES)
def publish_check(
    tracking_uri: str, artifact_root: str, database_url: str, config: PipelineConfig, check: DomainCheck
) -> str | None:
    """The Evidently report and figures to an MLflow run, the verdict to the database, a summary to Prefect."""
    report_uri = None
    if check.report_html is not None:
        with (
            fluent_tracking_uri(tracking_uri),
            mlflow.start_run(
                experiment_id=experiment_id_for(
                    MlflowClient(tracking_uri), f"{config.experiment_name(check.domain)}/monitoring", artifact_root
                ),
                run_name=f"monitor-{check.domain}-v{check.version}",
                tags={
                    "domainflow.domain": check.domain,
                    "domainflow.version": check.version,
                    "domainflow.status": check.status,
                },  # fmt: skip
            ) as run,
            tempfile.TemporaryDirectory() as scratch,
        ):
            mlflow.log_metrics(check.figures())
            mlflow.log_dict(check.to_dict(), "monitoring/check.json")
            path = Path(scratch) / "evidently_report.html"
            path.write_text(check.report_html)
            mlflow.log_artifact(str(path), artifact_path="monitoring")
            report_uri = f"{run.info.artifact_uri}/monitoring/evidently_report.html"
    record_check(open_database(database_url), check.to_record(report_uri))
    create_markdown_artifact(check_markdown(check, report_uri),
                             key=artifact_key("monitoring", config.name, check.domain),
                             description=f"{check.domain} monitoring: {check.status}")  # fmt: skip
    return report_uri


@task(**_RETRIES)
def guard_canary(
    tracking_uri: str, database_url: str, domain: str, config: PipelineConfig, reference: references.Reference
) -> str | None:
    """The live quality gate on a running canary; returns the version it rolled back, if any."""
    actor = f"prefect-flow-run/{flow_run.id or 'local'}"
    guard = guard_running_canary(open_database(database_url), tracking_uri, domain, config, reference, actor)
    log = get_run_logger().warning if guard.verdict == "rolled back" else get_run_logger().info
    log("canary domain=%s v%s live quality: %s %s", domain, guard.version, guard.verdict, guard.reason)
    return guard.version if guard.verdict == "rolled back" else None


@task
def emit_domain_events(events: list[DomainEvent]) -> list[str]:
    """Each event to Prefect's event stream, where deployment triggers pick it up; returns the event ids."""
    ids = []
    for event in events:
        emitted = emit_event(event=event.name, resource=event.resource, payload=_json_safe(event.payload))
        get_run_logger().info("event %s domain=%s payload=%s", event.name, event.domain, event.payload)
        if emitted is not None:
            ids.append(str(emitted.id))
    return ids


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value
