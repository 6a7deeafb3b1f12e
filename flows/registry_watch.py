"""watch_registry: notice `challenger` aliases set in the MLflow registry and announce them.

MLflow 3's registry webhooks need an MLflow tracking server and a receiver it can reach;
this scheduled watch works with any registry (a SQLite file included). Its
domainflow.registry.challenger_set event starts the `promote` deployment for the domain.
"""

from __future__ import annotations

from prefect import flow

from domainflow.config import PipelineConfig
from domainflow.settings import resolve_settings
from domainflow.tasks.registry_watch import announce_new_challengers


@flow(name="watch-registry", log_prints=True)
def watch_registry(config: PipelineConfig = PipelineConfig()) -> list[str]:
    """Each new challenger once; a version rolling out or already promoted is left alone."""
    if not config.domains.values:
        raise ValueError("the registry watch needs the domains listed in the config's domains.values")
    return announce_new_challengers(resolve_settings(), config)
