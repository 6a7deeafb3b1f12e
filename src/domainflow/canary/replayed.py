"""A canary judged on replayed traffic: the demo's and the scenario tests' way to give a canary live traffic."""

from __future__ import annotations

from sqlalchemy import Engine

from domainflow.canary.controller import OnDecision, abort_promotion, run_promotion
from domainflow.config import CanaryConfig, ReplayConfig
from domainflow.serving.replay import ReplayReport, Traffic, replaying
from domainflow.store.promotions import PromotionState


def promote_under_replay(
    engine: Engine,
    tracking_uri: str,
    domain: str,
    model_name: str,
    version: str,
    plan: CanaryConfig,
    actor: str,
    serving_url: str,
    traffic: Traffic,
    replay: ReplayConfig,
    on_decision: OnDecision | None = None,
) -> tuple[PromotionState, ReplayReport | None]:
    """run_promotion while `traffic` is replayed to the server; the replay lives exactly as long as the controller.

    When the replay runs out (replay.max_rows) before the canary is decided, no more traffic will
    come, so the promotion is aborted (the champion keeps serving) instead of holding until its limits.
    """

    def exhausted(report: ReplayReport) -> None:
        reason = f"the replayed traffic ran out after {report.sent:,} requests before the canary was decided"
        abort_promotion(engine, tracking_uri, domain, model_name, actor=actor, reason=reason)

    with replaying(serving_url, domain, traffic, replay, on_exhausted=exhausted) as run:
        state = run_promotion(engine, tracking_uri, domain, model_name, version, plan, actor, on_decision=on_decision)
    return state, run.report
