"""Monitoring's live quality gate on a running canary: its labelled predictions failing the tests roll it back.

The canary controller compares canary and champion step by step; this gate holds the canary
to the same absolute tests the champion is held to, whenever monitoring runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from domainflow.canary.controller import roll_back_promotion
from domainflow.config import PipelineConfig
from domainflow.registry.domain_model import DomainModel
from domainflow.store.promotions import RUNNING, PromotionConflict, read_promotion
from domainflow.store.rollouts import CANARY_ARM

from .check import check_canary_quality
from .reference import Reference
from .window import read_log

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CanaryGuard:
    version: str | None  # the canary judged (None: no promotion running)
    verdict: str  # "none running" | "too few labels" | "passed" | "rolled back" | "ended first"
    reason: str = ""


def guard_running_canary(model: DomainModel, config: PipelineConfig, reference: Reference, actor: str) -> CanaryGuard:
    """Roll the domain's running canary back when its labelled predictions fail the quality tests."""
    engine, domain = model.engine, model.domain
    promotion = read_promotion(engine, domain)
    if promotion is None or promotion.status != RUNNING:
        return CanaryGuard(None, "none running")
    canary = read_log(engine, domain, config.data.features, version=promotion.version, variant=CANARY_ARM,
                      history_days=config.monitoring.history_days, max_rows=config.monitoring.window_rows)  # fmt: skip
    quality = check_canary_quality(reference, canary, config)
    if quality is None or quality.passed:
        return CanaryGuard(promotion.version, "too few labels" if quality is None else "passed")
    failed = ", ".join(t["name"] for t in quality.tests if t["status"] != "SUCCESS")
    reason = (f"live quality gate: the canary failed {failed} on {quality.rows:,} labelled predictions "
              f"(AUC {quality.auc:.4f}, reference {quality.reference_auc:.4f})")  # fmt: skip
    try:
        roll_back_promotion(model, actor, reason)
    except PromotionConflict as error:  # its controller decided first
        return CanaryGuard(promotion.version, "ended first", str(error))
    return CanaryGuard(promotion.version, "rolled back", reason)
