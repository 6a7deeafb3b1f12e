"""Challengers set by hand in the registry, found so their canary can start.

Someone sets a domain's `challenger` alias in the MLflow UI or client; the watch notices it
and announces the version once. A version that is rolling out, or whose promotion already
ended, is left alone: no version is promoted twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from domainflow.registry.aliases import pending_challenger
from domainflow.store.announcements import claim_announcement
from domainflow.store.promotions import read_promotion


@dataclass(frozen=True)
class NewChallenger:
    domain: str
    model_name: str
    version: str
    champion: str | None


def new_challengers(tracking_uri: str, engine: Engine, models: dict[str, str]) -> list[NewChallenger]:
    """Challengers of `models` (domain -> registered model name) not yet announced nor promoted; claims each one.

    The claim is an insert keyed by (domain, version), so two watches running at once announce a version once.
    """
    found = []
    for domain, name in models.items():
        pending = pending_challenger(tracking_uri, name)
        if pending is None:
            continue
        version, champion = pending
        promotion = read_promotion(engine, domain)
        if promotion is not None and promotion.version == version:
            continue  # rolling out, or already promoted / rolled back / aborted
        if claim_announcement(engine, domain, version):
            found.append(NewChallenger(domain, name, version, champion))
    return found
