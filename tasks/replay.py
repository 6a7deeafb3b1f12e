"""Production traffic for `domainflow run`'s loop: held-out months replayed to the server, labels following."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from domainflow.config import PipelineConfig
from domainflow.data.split import TimeSplit
from domainflow.monitoring import timeline
from domainflow.serving import replay
from domainflow.serving.replay import ReplayReport
from domainflow.summary import DomainOutcome, artifact_key


@task
def replay_held_out_months(
    serving_url: str, domain: str, split: TimeSplit, config: PipelineConfig, until: datetime
) -> ReplayReport | None:
    """The held-out rows before `until`, once each and as fast as the server answers (no canary bakes here)."""
    report = replay.replay_held_out_months(serving_url, domain, split, config, until)
    if report is None:
        get_run_logger().warning("replay domain=%s: no held-out rows before %s", domain, until)
        return None
    get_run_logger().info("replay domain=%s sent=%d labelled=%d (up to %s) in %.1fs", domain, report.sent,
                          report.labelled, until, report.seconds)  # fmt: skip
    return report


@task
def plot_timeline(outcomes: list[DomainOutcome], config: PipelineConfig, reports_dir: str) -> str:
    """The loop's timeline as a PNG (daily quality and drift per domain, with what happened when) and an artifact."""
    path = timeline.plot_timeline(outcomes, config, Path(reports_dir) / f"{config.name}-timeline.png")
    create_markdown_artifact(timeline.timeline_markdown(outcomes, config, path),
                             key=artifact_key("timeline", config.name),
                             description="trained, promoted, drift detected, retrained, canary")  # fmt: skip
    return str(path)
