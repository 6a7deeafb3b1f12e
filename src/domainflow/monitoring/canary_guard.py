"""Monitoring's live check on a running canary: labels that show it worse than the champion roll it back.

The controller judges the canary at every look; monitoring runs on its own schedule and may find a
canary whose controller has stalled or died. Both judge the same thing the same way: the canary's
log loss against the champion arm's, on the same hours (step by step), with the controller's
always-valid interval and its one margin (`canary.quality_margin`). An absolute test of the canary
alone against the champion's test-month figures would fail a canary identical to the champion on
one look in ten at 200 labels, whenever the month was harder than August.

Monitoring also has what the controller's looks do not: time to load the champion's model. It
scores the canary's own labelled predictions with the champion (from the logged features) and
compares the two log losses row by row (`judge_watch`, the post-promotion watch's paired test).
Rows scored by both differ only by the models, not by which hours each arm happened to see, so
a canary worse than the champion is found on far fewer labels: at 50 % of one airport's traffic,
a canary 0.1 nats worse served two weeks before the arms' comparison saw it.
"""

from __future__ import annotations

from dataclasses import dataclass

from domainflow.canary.analysis import Quality, judge_quality, judge_watch
from domainflow.canary.controller import label_strata, roll_back_promotion
from domainflow.config import PipelineConfig
from domainflow.registry.champion import loaded_version
from domainflow.registry.domain_model import DomainModel
from domainflow.store.prediction_log import log_losses
from domainflow.store.promotions import RUNNING, PromotionConflict, PromotionState, read_promotion
from domainflow.store.rollouts import CANARY_ARM

from .promotion_watch import Loader
from .window import LABEL, LOSS, read_log


@dataclass(frozen=True)
class CanaryGuard:
    version: str | None  # the canary judged (None: no promotion running)
    verdict: str  # "none running" | "too few labels" | "passed" | "rolled back" | "ended first"
    reason: str = ""


def guard_running_canary(
    model: DomainModel, config: PipelineConfig, actor: str, load: Loader = loaded_version
) -> CanaryGuard:
    """Roll the domain's running canary back when its labels show it worse than the champion beyond the margin:
    the arms compared, or the canary's own rows scored by the champion too."""
    engine, domain = model.engine, model.domain
    promotion = read_promotion(engine, domain)
    if promotion is None or promotion.status != RUNNING:
        return CanaryGuard(None, "none running")
    quality = judge_quality(config.canary, label_strata(engine, promotion))
    if not quality.worse:
        paired = _paired_quality(model, config, promotion, load)
        if paired is not None and (paired.worse or quality.effect is None):
            quality = paired
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


def _paired_quality(
    model: DomainModel, config: PipelineConfig, promotion: PromotionState, load: Loader
) -> Quality | None:
    """The canary's labelled predictions against the champion's scores of the same rows; None when too few rows
    (the arms' comparison then speaks) or the champion cannot score them (it needs features the log lacks)."""
    if promotion.champion_version is None:
        return None
    features = config.data.features
    logged = read_log(model.engine, model.domain, features, version=promotion.version, variant=CANARY_ARM,
                      history_days=config.monitoring.history_days, max_rows=config.monitoring.window_rows)  # fmt: skip
    rows = logged.labelled
    if len(rows) < config.canary.min_labelled:
        return None
    try:
        with load(model.tracking_uri, model.name, promotion.champion_version) as predict:
            champion = log_losses(predict(rows[features]), rows[LABEL].to_numpy())
    except ValueError:
        return None
    return judge_watch(config.canary, rows[LOSS].to_numpy(), champion, names=("canary", "champion"))
