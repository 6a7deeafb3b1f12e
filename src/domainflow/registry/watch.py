"""Challengers set by hand in the registry, found so their canary can start.

Someone sets a domain's `challenger` alias in the MLflow UI or client; the watch notices it
and announces the version once. A version that is rolling out, or whose promotion already
ended, is left alone: no version is promoted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from domainflow.registry.aliases import pending_challenger
from domainflow.registry.domain_model import DomainModel
from domainflow.store.announcements import claim_announcement
from domainflow.store.promotions import read_promotion


@dataclass(frozen=True)
class NewChallenger:
    domain: str
    model_name: str
    version: str
    champion: str | None


def announce_new_challengers(
    models: list[DomainModel], announce: Callable[[NewChallenger], None]
) -> list[NewChallenger]:
    """Each challenger of `models` not yet announced nor promoted, claimed and passed to `announce`, once.

    The claim is an insert keyed by (domain, version), so two watches running at once announce
    a version once. `announce` is the caller's way to tell the world (Prefect emits an event).
    """
    found = []
    for model in models:
        pending = pending_challenger(model.tracking_uri, model.name)
        if pending is None:
            continue
        version, champion = pending
        promotion = read_promotion(model.engine, model.domain)
        if promotion is not None and promotion.version == version:
            continue  # rolling out, or already promoted / rolled back / aborted
        if claim_announcement(model.engine, model.domain, version):
            challenger = NewChallenger(model.domain, model.name, version, champion)
            announce(challenger)
            found.append(challenger)
    return found
