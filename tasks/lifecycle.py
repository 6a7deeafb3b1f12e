"""The lifecycle's own tasks: a domain's training flow run in a domain worker process, the alias that
says whether the domain has a champion to serve, and the domains' stored outcomes, which a rerun with
the same inputs reports instead of acting again.

A flow cannot be submitted to a task runner; Prefect runs sub-flows side by side by wrapping
each in a task, and `train_domain` is that task for `domainflow run`'s domains when scale.domain_workers
is above 1 (at 1 the lifecycle calls the training flow itself).
"""

from __future__ import annotations

from mlflow import MlflowClient
from prefect import task

from domainflow import summary
from domainflow.config import PipelineConfig
from domainflow.registry import mlflow_registry
from domainflow.settings import Settings
from domainflow.store.database import open_database
from domainflow.summary import DomainOutcome

from .policies import RETRY_IO, flow_run_actor


@task(task_run_name="train-{domain}")
def train_domain(domain: str, config: PipelineConfig, source_fingerprint: str) -> DomainOutcome:
    """The domain's outcome, or its failure with the error the training flow ended with."""
    # Imported by name where the task runs: a worker process then gets the flow from its module, whose
    # annotations resolve. Pickled along with this task from a flow loaded by file path (a deployment's
    # entrypoint), it would arrive without `PipelineConfig` in its globals and fail to validate its parameters.
    from domainflow.flows.training import train_domain_model

    state = train_domain_model(domain, config, source_fingerprint, return_state=True)
    return DomainOutcome.from_training(domain, state.result(raise_on_failure=False))


@task(**RETRY_IO)
def current_alias_version(settings: Settings, domain: str, config: PipelineConfig, alias: str) -> str | None:
    """Retried: it asks the registry. The lifecycle asks for `champion`: a domain without one has nothing to serve."""
    client = MlflowClient(settings.tracking_uri)
    return mlflow_registry.current_alias_version(client, config.registered_model_name(domain), alias)


@task(**RETRY_IO)
def stored_outcomes(
    settings: Settings, source_fingerprint: str, config: PipelineConfig, trained: list[DomainOutcome]
) -> list[DomainOutcome]:
    """Retried: it reads the state database. A domain with a stored outcome sits out the canary and the loop."""
    return summary.stored_outcomes(open_database(settings.database_url), source_fingerprint, config, trained)


@task(**RETRY_IO)
def keep_outcome(settings: Settings, source_fingerprint: str, config: PipelineConfig, outcome: DomainOutcome) -> None:
    """Retried: it writes the state database."""
    summary.keep_outcome(open_database(settings.database_url), source_fingerprint, config, outcome, flow_run_actor())
