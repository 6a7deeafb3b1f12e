"""What a promotion did, for the terminal, the Prefect UI and the flow's return value."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from domainflow.canary.approval import ACTIONS
from domainflow.config import PipelineConfig
from domainflow.serving.replay import ReplayReport
from domainflow.store.promotions import OPERATOR, PromotionState


class PromotionStep(BaseModel):
    weight: float
    action: str
    reason: str
    # The canary's labels so far by the API key that sent them ("-": none, sent before keys).
    labels_by_key: dict[str, int] = {}


class PromotionSummary(BaseModel):
    """`promoted`: the challenger is champion; `rolled_back`: the champion kept its traffic;
    `nothing_to_promote`: no challenger distinct from the champion; `refused`: the challenger had not passed its
    gates (set by hand) and no override was given; `failed`: the promotion stopped on an error.

    Under manual approval, `approval` says how the canary that passed its last step was answered, and
    `approver` who answered (the flow run, when nobody did in time).
    """

    domain: str
    status: Literal["promoted", "rolled_back", "aborted", "nothing_to_promote", "refused", "failed"]
    model_name: str
    version: str | None = None
    champion_version: str | None = None
    reason: str = ""
    # The largest share of traffic the canary reached.
    max_weight: float = 0.0
    steps: list[PromotionStep] = []
    replayed: int | None = None
    labelled: int | None = None
    approval: Literal["approved", "rejected", "timed_out"] | None = None
    approver: str | None = None

    def to_markdown(self) -> str:
        version, champion = self.version or "-", self.champion_version or "-"
        head = f"**{self.model_name} v{version}: {self.status}** (champion was v{champion})"
        if self.approval is not None:
            who = "" if self.approval == "timed_out" else f" by {self.approver}"
            head += f"; approval {self.approval.replace('_', ' ')}{who}"
        rows = [f"| {s.weight:.0%} | {s.action} | {s.reason} | {_by_key(s.labels_by_key)} |" for s in self.steps]
        table = ["| canary weight | decision | why | labels by key |", "|---|---|---|---|", *rows] if rows else []
        traffic = [] if self.replayed is None else [f"replayed {self.replayed:,} requests, {self.labelled:,} labelled"]
        return "\n\n".join([head, self.reason, *traffic, "\n".join(table)])


def _by_key(labels: dict[str, int]) -> str:
    return ", ".join(f"{key} {count:,}" for key, count in sorted(labels.items(), key=lambda item: -item[1])) or "-"


def summarize_promotion(
    domain: str, config: PipelineConfig, state: PromotionState | None, replayed: ReplayReport | None = None
) -> PromotionSummary:
    """From the controller's persisted state (and the replay's report when traffic was replayed).

    No state: the domain had no challenger distinct from its champion, so nothing was promoted.
    """
    model_name, plan = config.registered_model_name(domain), config.canary
    if state is None:
        return PromotionSummary(domain=domain, status="nothing_to_promote", model_name=model_name,
                                reason="no challenger distinct from the champion")  # fmt: skip
    steps = [
        PromotionStep(weight=plan.steps[min(d["step"], len(plan.steps) - 1)].weight, action=d["action"],
                      reason=d["reason"], labels_by_key=d.get("labels_by_key", {}))
        for d in state.decisions
        if d["action"] != "hold"
    ]  # fmt: skip
    reached = [plan.steps[min(d["step"], len(plan.steps) - 1)].weight for d in state.decisions]
    final = [d["reason"] for d in state.decisions if d["action"] in ("rollback", "abort", OPERATOR, *ACTIONS.values())]
    reason = final[-1] if final else (steps[-1].reason if steps else "")
    answered = state.approval or {}
    return PromotionSummary(
        domain=state.domain,
        status=state.status if state.status in ("promoted", "rolled_back", "aborted") else "failed",
        model_name=model_name,
        version=state.version,
        champion_version=state.champion_version,
        reason=reason,
        max_weight=max(reached, default=0.0),
        steps=steps,
        replayed=None if replayed is None else replayed.sent,
        labelled=None if replayed is None else replayed.labelled,
        approval=answered.get("outcome"),
        approver=answered.get("by"),
    )


def refused_promotion(
    domain: str, config: PipelineConfig, version: str, champion_version: str, reason: str
) -> PromotionSummary:
    """A challenger turned away before its canary (see registry.aliases.admit_challenger): nothing moved."""
    return PromotionSummary(domain=domain, status="refused", model_name=config.registered_model_name(domain),
                            version=version, champion_version=champion_version, reason=reason)  # fmt: skip
