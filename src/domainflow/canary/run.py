"""run_canary: the controller judging the traffic a server gets, or traffic replayed to it meanwhile (the demo)."""

from __future__ import annotations

from domainflow.canary.controller import OnDecision, abort_promotion, run_promotion
from domainflow.config import CanaryConfig
from domainflow.registry.domain_model import DomainModel
from domainflow.serving.replay import ReplayPlan, ReplayReport, replaying
from domainflow.store.promotions import PromotionState


def run_canary(
    model: DomainModel,
    version: str,
    plan: CanaryConfig,
    actor: str,
    replay: ReplayPlan | None = None,
    on_decision: OnDecision | None = None,
    *,
    approval_seconds: float | None = None,
) -> tuple[PromotionState, ReplayReport | None]:
    """run_promotion, judged on the traffic the server gets; with `replay`, on that traffic replayed meanwhile.

    The replay lives exactly as long as the controller. When it runs out (replay.config.max_rows)
    before the canary is decided, no more traffic will come, so the promotion is aborted (the
    champion keeps serving) instead of holding until its limits. A canary that then awaits approval
    (`approval_seconds`, see run_promotion) waits on the server's own traffic.
    """
    if replay is None:
        return run_promotion(model, version, plan, actor, on_decision=on_decision,
                             approval_seconds=approval_seconds), None  # fmt: skip

    def exhausted(report: ReplayReport) -> None:
        reason = f"the replayed traffic ran out after {report.sent:,} requests before the canary was decided"
        abort_promotion(model, actor=actor, reason=reason)

    with replaying(replay, on_exhausted=exhausted) as running:
        state = run_promotion(model, version, plan, actor, on_decision=on_decision, approval_seconds=approval_seconds)
    return state, running.report
