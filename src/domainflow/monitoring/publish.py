"""Where a check goes once made: its Evidently report and figures to MLflow, its verdict to the state database."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from domainflow.config import PipelineConfig
from domainflow.registry.mlflow_registry import experiment_id_for, fluent_tracking_uri
from domainflow.settings import Settings
from domainflow.store.checks import record_check
from domainflow.store.database import open_database

from .check import DomainCheck


def publish_check(settings: Settings, config: PipelineConfig, check: DomainCheck) -> str | None:
    """Log the check to a run of the domain's monitoring experiment and record it; returns the report's URI.

    A check without a report (too few predictions to judge) is only recorded.
    """
    report_uri = None
    if check.report_html is not None:
        client = MlflowClient(settings.tracking_uri)
        experiment = f"{config.experiment_name(check.domain)}/monitoring"
        tags = {"domainflow.domain": check.domain, "domainflow.version": check.version,
                "domainflow.status": check.status}  # fmt: skip
        with (
            fluent_tracking_uri(settings.tracking_uri),
            mlflow.start_run(experiment_id=experiment_id_for(client, experiment, settings.artifact_root),
                             run_name=f"monitor-{check.domain}-v{check.version}", tags=tags) as run,
            tempfile.TemporaryDirectory() as scratch,
        ):  # fmt: skip
            mlflow.log_metrics(check.figures())
            mlflow.log_dict(check.to_dict(), "monitoring/check.json")
            path = Path(scratch) / "evidently_report.html"
            path.write_text(check.report_html)
            mlflow.log_artifact(str(path), artifact_path="monitoring")
            report_uri = f"{run.info.artifact_uri}/monitoring/evidently_report.html"
    record_check(open_database(settings.database_url), check.to_record(report_uri))
    return report_uri
