"""Promotion tasks: find the challenger, replay live traffic, run the canary controller, report."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from domainflow.canary import controller
from domainflow.canary.report import PromotionSummary, summarize_promotion
from domainflow.canary.state import PromotionState, read_promotion
from domainflow.config import PipelineConfig
from domainflow.data.split import TimeSplit
from domainflow.data.validation import LABEL_COLUMN
from domainflow.registry import aliases
from domainflow.serving import replay
from domainflow.serving.database import open_database
from domainflow.summary import artifact_key

from .policies import IO_RETRY_DELAYS, retry_unless_user_error


@task(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_unless_user_error)
def find_challenger(tracking_uri: str, domain: str, config: PipelineConfig) -> tuple[str, str] | None:
    """(challenger, champion) versions, or None when there is nothing to promote."""
    found = aliases.pending_challenger(tracking_uri, config.registered_model_name(domain))
    get_run_logger().info("domain=%s challenger,champion=%s", domain, found)
    return found


@task
def replay_holdout(
    serving_url: str,
    domain: str,
    split: TimeSplit,
    config: PipelineConfig,
    database_url: str,
    tracking_uri: str,
    version: str,
) -> replay.ReplayReport:
    """Live traffic for the canary until its promotion of `version` finishes.

    When replay.max_rows are sent first, the canary is still undecided and no more traffic will
    come: the promotion is aborted (the champion keeps serving) rather than left to hold.
    """
    engine = open_database(database_url)

    def promotion_done() -> bool:
        state = read_promotion(engine, domain)
        return state is not None and state.version == version and state.finished

    report = replay.replay_traffic(
        serving_url, domain, split.holdout, split.holdout[LABEL_COLUMN].to_numpy(), config.data.numeric_features,
        config.data.categorical_features, config.replay, stop=promotion_done,
    )  # fmt: skip
    get_run_logger().info("replay domain=%s sent=%d labelled=%d rate=%.0f/s by_variant=%s",
                          domain, report.sent, report.labelled, report.rate, report.by_variant)  # fmt: skip
    state = read_promotion(engine, domain)
    if not report.stopped_early and state is not None and state.version == version and not state.finished:
        reason = f"the replayed traffic ran out after {report.sent:,} requests before the canary was decided"
        controller.abort_promotion(engine, tracking_uri, domain, config.registered_model_name(domain),
                                   actor=f"prefect-flow-run/{flow_run.id or 'local'}", reason=reason)  # fmt: skip
    return report


@task(retries=1, retry_delay_seconds=5, retry_condition_fn=retry_unless_user_error)
def run_canary(
    tracking_uri: str, database_url: str, domain: str, config: PipelineConfig, version: str
) -> PromotionState:
    """Retried once: the controller resumes its persisted state, so a retry continues where it stopped."""
    logger = get_run_logger()

    def log_decision(state, decision) -> None:
        if decision.action != "hold":
            logger.info("canary domain=%s v%s step=%d %s: %s", domain, version, state.step, decision.action,
                        decision.reason)  # fmt: skip

    return controller.run_promotion(
        open_database(database_url), tracking_uri, domain, config.registered_model_name(domain), version,
        config.canary, actor=f"prefect-flow-run/{flow_run.id or 'local'}", on_decision=log_decision,
    )  # fmt: skip


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
