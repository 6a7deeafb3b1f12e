"""Monitoring's live check on a running canary: labels that show it worse than the champion roll it back.

The controller judges the canary at every look; monitoring runs on its own schedule and may find a
canary whose controller has stalled or died. Both judge the same thing the same way: the canary's
log loss against the champion arm's, on the same hours (step by step), with the controller's
always-valid interval and its one margin (`canary.quality_margin`). An absolute test of the canary
alone against the champion's test-month figures would fail a canary identical to the champion on
one look in ten at 200 labels, whenever the month was harder than August.
"""

from __future__ import annotations

from dataclasses import dataclass

from domainflow.canary.analysis import judge_quality
from domainflow.canary.controller import label_strata, roll_back_promotion
from domainflow.config import PipelineConfig
from domainflow.registry.domain_model import DomainModel
from domainflow.store.promotions import RUNNING, PromotionConflict, read_promotion


@dataclass(frozen=True)
class CanaryGuard:
    version: str | None  # the canary judged (None: no promotion running)
    verdict: str  # "none running" | "too few labels" | "passed" | "rolled back" | "ended first"
    reason: str = ""


def guard_running_canary(model: DomainModel, config: PipelineConfig, actor: str) -> CanaryGuard:
    """Roll the domain's running canary back when its labels show it worse than the champion beyond the margin."""
    engine, domain = model.engine, model.domain
    promotion = read_promotion(engine, domain)
    if promotion is None or promotion.status != RUNNING:
        return CanaryGuard(None, "none running")
    quality = judge_quality(config.canary, label_strata(engine, promotion))
    if quality.effect is None:
        return CanaryGuard(promotion.version, "too few labels", quality.summary)
    if not quality.worse:
        return CanaryGuard(promotion.version, "passed", quality.summary)
    reason = f"live quality check: {quality.summary}"
    try:
        roll_back_promotion(model, actor, reason)
    except PromotionConflict as error:  # its controller decided first
        return CanaryGuard(promotion.version, "ended first", str(error))
    return CanaryGuard(promotion.version, "rolled back", reason)
