"""The post-promotion watch: a newly promoted champion against the version it replaced, on the same rows.

A canary is judged on the weeks it ran; a promoted version then serves months it was never
judged on. Its delay rate, say, can move (the flights' December delays twice November's) so that
a retrain calibrated on a quiet month serves a busy one far worse than the version it replaced.
So for `canary.watch_days` after a promotion, each monitoring check scores the champion's own
labelled predictions of the last `canary.watch_window_days` with the replaced version (its
pyfunc model, from the logged features) and compares the two per-row log losses, paired, with
the canary's always-valid interval and its one margin (`canary.analysis.judge_watch`). A
champion worse by more than the margin is reverted: the replaced version is champion again and
takes all traffic, the promotion's status becomes `reverted`, and the audit log has the
`rollback` row with the figures.

Why not keep the replaced version as a shadow arm in the server: the watch needs nothing the log
does not already hold (the features of every prediction), costs the server nothing, and works
for predictions served before the watch was turned on.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from domainflow.canary.analysis import judge_watch
from domainflow.canary.controller import SYSTEM_CLOCK, Clock, revert_promoted
from domainflow.config import PipelineConfig
from domainflow.registry.champion import loaded_version
from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import CHAMPION, current_alias_version
from domainflow.store.prediction_log import log_losses
from domainflow.store.promotions import PROMOTED, PromotionConflict, PromotionState, promoted_at, read_promotion
from domainflow.store.rollouts import CHAMPION_ARM

from .window import LABEL, LOSS, SECONDS_PER_DAY, read_log

# Loads a registered version's scoring function for the rows' features (registry.champion.loaded_version).
Loader = Callable[[str, str, str], AbstractContextManager[Callable[[pd.DataFrame], np.ndarray]]]


@dataclass(frozen=True)
class PromotionWatch:
    version: str | None  # the watched champion (None: no promotion in its watch)
    replaced: str | None = None  # the version it replaced
    # "not watched" | "superseded" | "too few labels" | "passed" | "reverted" | "ended first" | "not comparable"
    verdict: str = "not watched"
    reason: str = ""
    figures: dict[str, float | None] = field(default_factory=dict)


def watched_promotion(model: DomainModel, config: PipelineConfig, now: float) -> PromotionState | None:
    """The domain's promotion when it ended promoted less than `canary.watch_days` ago and replaced a version."""
    promotion = read_promotion(model.engine, model.domain)
    if promotion is None or promotion.status != PROMOTED or not promotion.settled or not promotion.champion_version:
        return None
    at = promoted_at(promotion)
    if at is None or now - at > config.canary.watch_days * SECONDS_PER_DAY:
        return None
    return promotion


def watch_promoted_champion(
    model: DomainModel, config: PipelineConfig, actor: str, clock: Clock = SYSTEM_CLOCK, load: Loader = loaded_version
) -> PromotionWatch:
    """Revert the domain's promotion when its champion is worse than the version it replaced on the same rows."""
    promotion = watched_promotion(model, config, clock.now())
    if promotion is None:
        return PromotionWatch(None)
    version, replaced = promotion.version, promotion.champion_version
    champion = current_alias_version(model.client, model.name, CHAMPION)
    if champion != version:
        return PromotionWatch(version, replaced, "superseded", f"the champion is now v{champion}")
    features = config.data.features
    window = read_log(model.engine, model.domain, features, version=version, variant=CHAMPION_ARM,
                      history_days=config.canary.watch_window_days, max_rows=config.monitoring.window_rows)  # fmt: skip
    labelled = window.labelled
    if len(labelled) < config.canary.min_labelled:
        counted = f"{len(labelled):,}/{config.canary.min_labelled:,} labelled since the promotion"
        return PromotionWatch(version, replaced, "too few labels", counted)
    try:
        with load(model.tracking_uri, model.name, replaced) as predict:
            scores = predict(labelled[features])
    except ValueError as error:  # the replaced version needs features the log does not hold
        return PromotionWatch(version, replaced, "not comparable", str(error))
    quality = judge_watch(config.canary, labelled[LOSS].to_numpy(), log_losses(scores, labelled[LABEL].to_numpy()))
    figures = {"effect": quality.effect, "ci_low": quality.ci_low, "ci_high": quality.ci_high,
               "rows": float(len(labelled))}  # fmt: skip
    if not quality.worse:
        return PromotionWatch(version, replaced, "passed", quality.summary, figures)
    reason = f"post-promotion watch: {quality.summary}; v{replaced} is champion again"
    try:
        revert_promoted(model, version, actor, reason, clock)
    except PromotionConflict as error:  # a new promotion began, or an operator reverted it first
        return PromotionWatch(version, replaced, "ended first", str(error), figures)
    return PromotionWatch(version, replaced, "reverted", reason, figures)
