"""Promotion tasks: find the challenger, run the canary (under replayed traffic for a demo), summarize it."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from domainflow.canary import report, run
from domainflow.canary.report import PromotionSummary
from domainflow.config import PipelineConfig
from domainflow.data.split import TimeSplit
from domainflow.registry import aliases
from domainflow.registry.domain_model import DomainModel
from domainflow.serving.replay import ReplayPlan, ReplayReport
from domainflow.settings import Settings
from domainflow.store.promotions import PromotionState
from domainflow.summary import artifact_key

from .policies import RESUME_ONCE, RETRY_IO, flow_run_actor


@task(**RETRY_IO)
def pending_challenger(settings: Settings, domain: str, config: PipelineConfig) -> tuple[str, str] | None:
    """(challenger, champion) versions, or None when there is nothing to promote."""
    found = aliases.pending_challenger(settings.tracking_uri, config.registered_model_name(domain))
    get_run_logger().info("domain=%s challenger,champion=%s", domain, found)
    return found


@task(**RESUME_ONCE)
def run_canary(
    settings: Settings,
    domain: str,
    config: PipelineConfig,
    version: str,
    serving_url: str | None = None,
    split: TimeSplit | None = None,
    replay_until: datetime | None = None,
) -> tuple[PromotionState, ReplayReport | None]:
    """Retried once: the controller resumes its persisted state, so a retry continues where it stopped.

    Under manual approval (config.promotion) a canary that passes its last step comes back awaiting approval.

    With `serving_url` and `split`, the held-out rows (before `replay_until`) are replayed to that server
    while the controller runs.
    """
    logger = get_run_logger()

    def log_decision(state, decision) -> None:
        if decision.action != "hold":
            logger.info("canary domain=%s v%s step=%d %s: %s", domain, version, state.step, decision.action,
                        decision.reason)  # fmt: skip

    model = DomainModel.open(settings, domain, config.registered_model_name(domain))
    replay = None
    if serving_url is not None and split is not None:
        replay = ReplayPlan.held_out(serving_url, domain, split, config, replay_until)
    approval_seconds = config.promotion.approval_timeout(domain)
    state, replayed = run.run_canary(model, version, config.canary, flow_run_actor(), replay, log_decision,
                                     approval_seconds=approval_seconds)  # fmt: skip
    if replayed is not None:
        logger.info("replay domain=%s sent=%d labelled=%d rate=%.0f/s by_variant=%s",
                    domain, replayed.sent, replayed.labelled, replayed.rate, replayed.by_variant)  # fmt: skip
    return state, replayed


@task
def admit_challenger(
    settings: Settings, domain: str, config: PipelineConfig, version: str, override_reason: str | None
) -> str | None:
    """Why a challenger that did not pass its gates is turned away (None: it may be canaried)."""
    model = DomainModel.open(settings, domain, config.registered_model_name(domain))
    refusal = aliases.admit_challenger(model, version, override_reason, flow_run_actor())
    if refusal is not None:
        get_run_logger().warning("domain=%s challenger v%s refused: %s", domain, version, refusal)
    return refusal


@task
def summarize_promotion(
    domain: str, config: PipelineConfig, state: PromotionState | None, replayed: ReplayReport | None
) -> PromotionSummary:
    return _published(report.summarize_promotion(domain, config, state, replayed), config)


@task
def refused_promotion(
    domain: str, config: PipelineConfig, version: str, champion_version: str, reason: str
) -> PromotionSummary:
    return _published(report.refused_promotion(domain, config, version, champion_version, reason), config)


def _published(summary: PromotionSummary, config: PipelineConfig) -> PromotionSummary:
    create_markdown_artifact(summary.to_markdown(), key=artifact_key("promotion", config.name, summary.domain),
                             description=f"{summary.domain} canary promotion: {summary.status}")  # fmt: skip
    return summary
