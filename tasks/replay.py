"""Production traffic for `domainflow run`'s loop: held-out months replayed to the server, labels following."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger

from domainflow.config import PipelineConfig
from domainflow.data.split import TimeSplit
from domainflow.serving.replay import ReplayReport, Traffic, replay_traffic


@task
def replay_held_out_months(
    serving_url: str, domain: str, config: PipelineConfig, split: TimeSplit, until: datetime
) -> ReplayReport | None:
    """The held-out rows before `until`, once each and as fast as the server answers (no canary bakes here)."""
    rows = split.holdout.loc[split.holdout[config.data.timestamp] < until]
    if rows.empty:
        get_run_logger().warning("replay domain=%s: no held-out rows before %s", domain, until)
        return None
    replay = config.replay.model_copy(update={"rate_limit": None, "max_rows": len(rows), "feedback_delay_seconds": 0.0})
    report = replay_traffic(serving_url, domain, Traffic.from_rows(rows, config.data), replay)
    get_run_logger().info("replay domain=%s sent=%d labelled=%d (%s to %s) in %.1fs", domain, report.sent,
                          report.labelled, rows[config.data.timestamp].min(), until, report.seconds)  # fmt: skip
    return report


@task
def plot_lifecycle_timeline(outcomes: list, config: PipelineConfig, reports_dir: str) -> str | None:
    """The loop's timeline as a PNG (daily quality and drift per domain, with what happened when) and an artifact."""
    from prefect.artifacts import create_markdown_artifact

    from domainflow.monitoring.timeline import plot_timeline
    from domainflow.summary import artifact_key

    path = plot_timeline(outcomes, config, Path(reports_dir) / f"{config.name}-timeline.png")
    lines = [f"# {config.name} lifecycle", ""]
    for outcome in outcomes:
        lines += [f"## {outcome.domain}", *(f"1. {step}" for step in outcome.timeline()), ""]
    lines += [f"Plot: `{path}`"]
    create_markdown_artifact("\n".join(lines), key=artifact_key("timeline", config.name),
                             description="trained, promoted, drift detected, retrained, canary")  # fmt: skip
    return str(path)
