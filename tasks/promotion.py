"""Promotion tasks: find the challenger, run the canary controller (under replayed traffic for a demo), report."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from domainflow.canary import controller, replayed
from domainflow.canary.report import PromotionSummary, summarize_promotion
from domainflow.config import PipelineConfig
from domainflow.data.split import TimeSplit
from domainflow.registry import aliases
from domainflow.serving import replay
from domainflow.store.database import open_database
from domainflow.store.promotions import PromotionState
from domainflow.summary import artifact_key

from .policies import IO_RETRY_DELAYS, retry_unless_user_error


@task(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_unless_user_error)
def find_challenger(tracking_uri: str, domain: str, config: PipelineConfig) -> tuple[str, str] | None:
    """(challenger, champion) versions, or None when there is nothing to promote."""
    found = aliases.pending_challenger(tracking_uri, config.registered_model_name(domain))
    get_run_logger().info("domain=%s challenger,champion=%s", domain, found)
    return found


@task(retries=1, retry_delay_seconds=5, retry_condition_fn=retry_unless_user_error)
def run_canary(
    tracking_uri: str,
    database_url: str,
    domain: str,
    config: PipelineConfig,
    version: str,
    serving_url: str | None = None,
    split: TimeSplit | None = None,
    replay_until: datetime | None = None,
) -> tuple[PromotionState, replay.ReplayReport | None]:
    """Retried once: the controller resumes its persisted state, so a retry continues where it stopped.

    With `serving_url` and `split`, the held-out rows are replayed to that server while the controller runs.
    """
    logger = get_run_logger()
    engine, name = open_database(database_url), config.registered_model_name(domain)
    actor = f"prefect-flow-run/{flow_run.id or 'local'}"

    def log_decision(state, decision) -> None:
        if decision.action != "hold":
            logger.info("canary domain=%s v%s step=%d %s: %s", domain, version, state.step, decision.action,
                        decision.reason)  # fmt: skip

    if serving_url is None or split is None:
        state = controller.run_promotion(engine, tracking_uri, domain, name, version, config.canary, actor,
                                         on_decision=log_decision)  # fmt: skip
        return state, None
    held_out = split.holdout
    if replay_until is not None:
        held_out = held_out.loc[held_out[config.data.timestamp] < replay_until]
    state, report = replayed.promote_under_replay(
        engine, tracking_uri, domain, name, version, config.canary, actor, serving_url,
        replay.Traffic.from_rows(held_out, config.data), config.replay, on_decision=log_decision,
    )  # fmt: skip
    if report is not None:
        logger.info("replay domain=%s sent=%d labelled=%d rate=%.0f/s by_variant=%s",
                    domain, report.sent, report.labelled, report.rate, report.by_variant)  # fmt: skip
    return state, report


@task
def report_promotion(
    domain: str, config: PipelineConfig, state: PromotionState | None, replayed: replay.ReplayReport | None
) -> PromotionSummary:
    name = config.registered_model_name(domain)
    if state is None:
        summary = PromotionSummary(domain=domain, status="nothing_to_promote", model_name=name,
                                   reason="no challenger distinct from the champion")  # fmt: skip
    else:
        summary = summarize_promotion(state, config.canary, name, replayed)
    create_markdown_artifact(summary.to_markdown(), key=artifact_key("promotion", config.name, domain),
                             description=f"{domain} canary promotion: {summary.status}")  # fmt: skip
    return summary
