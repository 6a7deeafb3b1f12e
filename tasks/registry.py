"""MLflow tasks: log the run, register the version, apply the gate's verdict. Retried: they talk to MLflow."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from domainflow import summary, tracking
from domainflow.candidates.gate import CandidateEvaluation
from domainflow.candidates.scores import TrainedCandidate
from domainflow.config import PipelineConfig
from domainflow.data.prepared import DomainData
from domainflow.registry import aliases, integrity, mlflow_registry
from domainflow.registry.aliases import GateDecision
from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import LoggedRun
from domainflow.settings import Settings
from domainflow.store.audit import AuditTrail
from domainflow.store.database import open_database
from domainflow.summary import DomainOutcome, artifact_key

from .policies import CACHED_STAGE, JUDGED_ONCE, RETRY_IO, flow_run_actor


@task(**RETRY_IO)
def open_tracking_store(tracking_uri: str) -> None:
    """Before domains train in parallel: the store's schema is built once, not raced by every worker."""
    mlflow_registry.open_tracking_store(tracking_uri)


@task(**RETRY_IO)
def registered_version(
    settings: Settings, config: PipelineConfig, data: DomainData, evaluation: CandidateEvaluation
) -> str | None:
    """The version this training's run was registered as, when both are still in the registry; None when not.

    The three steps after it are idempotent and cached; the flow refreshes them when this finds nothing,
    so a version deleted by hand is registered again rather than read back from the cache.
    """
    name = config.registered_model_name(data.domain)
    key = tracking.run_key(data, config, evaluation.family)
    return mlflow_registry.registered_version(settings.tracking_uri, name, config.experiment_name(data.domain), key)


# Cached under the judgement's key: the same training judged the same way logs to the run it logged to.
@task(cache_policy=JUDGED_ONCE, **RETRY_IO)
def log_training_run(
    settings: Settings,
    config: PipelineConfig,
    data: DomainData,
    candidate: TrainedCandidate,
    evaluation: CandidateEvaluation,
) -> LoggedRun:
    """Trials become child runs; the served variant is the run's model."""
    with mlflow_registry.explained_store_errors(settings.tracking_uri):
        logged = tracking.log_training_run(settings.tracking_uri, settings.artifact_root, config, data, candidate,
                                           evaluation, logged_by=str(flow_run.id or ""))  # fmt: skip
    get_run_logger().info("mlflow run_id=%s reused=%s model=%s", logged.run_id, logged.reused, logged.model_uri)
    return logged


@task(cache_policy=CACHED_STAGE, **RETRY_IO)
def register_model_version(settings: Settings, domain: str, config: PipelineConfig, logged: LoggedRun) -> str:
    """The version carries the run's tags (data, config, code) and the digest of its files, checked before serving.

    A new version is audited (`registration`); the cache answers a rerun, so it writes no row.
    """
    name = config.registered_model_name(domain)
    description = f"{config.name}: delay model for {config.domains.column} = {domain}, trained by domainflow."
    trail = AuditTrail(open_database(settings.database_url), domain, flow_run_actor())
    with mlflow_registry.explained_store_errors(settings.tracking_uri):
        version = integrity.register_model_version(settings.tracking_uri, name, logged, logged.version_tags,
                                                   description, audit=trail)  # fmt: skip
    get_run_logger().info("registered model=%s version=%s", name, version)
    missing = mlflow_registry.registered_again(settings.tracking_uri, name, version)
    if missing:
        get_run_logger().warning("%s: %s, registered again as v%s from the same run", name, missing, version)
    return version


@task(cache_policy=CACHED_STAGE, **RETRY_IO)
def apply_gate_verdict(
    settings: Settings, domain: str, config: PipelineConfig, version: str, evaluation: CandidateEvaluation
) -> GateDecision:
    """Gates the alias: only a version that passed every check becomes `challenger`; the moves are audited.

    Cached: a rerun reports the decision the verdict made then, not the aliases the loop has moved since.
    """
    verdict = evaluation.verdict
    model = DomainModel.open(settings, domain, config.registered_model_name(domain))
    with mlflow_registry.explained_store_errors(settings.tracking_uri):
        decision = aliases.apply_gate_verdict(model, version, verdict.passed, verdict.reason, verdict.failed_checks,
                                              actor=flow_run_actor())  # fmt: skip
    log = get_run_logger().info if decision.passed else get_run_logger().warning
    log("gate domain=%s version=%s passed=%s aliases=%s (%s)",
        domain, version, decision.passed, decision.aliases, decision.reason)  # fmt: skip
    return decision


@task
def summarize_domain_run(
    config: PipelineConfig,
    data: DomainData,
    candidate: TrainedCandidate,
    evaluation: CandidateEvaluation,
    logged: LoggedRun,
    version: str,
    decision: GateDecision,
) -> DomainOutcome:
    outcome = summary.summarize_domain_run(config, data, candidate, evaluation, logged, version, decision,
                                           flow_run_id=str(flow_run.id or ""))  # fmt: skip
    create_markdown_artifact(outcome.to_markdown(), key=artifact_key("training", config.name, data.domain),
                             description=f"{data.domain} training run")  # fmt: skip
    return outcome
