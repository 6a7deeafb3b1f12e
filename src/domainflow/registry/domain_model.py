"""A domain's registered model and the two stores its state lives in, always passed together.

MLflow's registry holds the versions and aliases; the state database (domainflow.store)
holds the audit of every move, the locks, the rollouts and the promotions. Every function
that moves a domain's aliases or traffic takes one `DomainModel`, never the URI and the
engine as separate arguments in whichever order.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from sqlalchemy import Engine

from domainflow.settings import Settings
from domainflow.store.database import open_database


@dataclass(frozen=True)
class DomainModel:
    domain: str
    name: str  # the registered model's name
    tracking_uri: str
    engine: Engine

    @classmethod
    def open(cls, settings: Settings, domain: str, name: str) -> DomainModel:
        """The handles for `domain`'s model `name` in the stores `settings` names (the database is opened once)."""
        return cls(domain=domain, name=name, tracking_uri=settings.tracking_uri,
                   engine=open_database(settings.database_url))  # fmt: skip

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)
