"""MLflow tasks: log the run, register the version, apply the gate. Retried: they talk to the tracking server."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from domainflow.config import PipelineConfig
from domainflow.data.features import FeaturePipeline
from domainflow.data.split import TimeSplit
from domainflow.data.validation import ValidationOutcome
from domainflow.evaluation.candidate import CandidateEvaluation
from domainflow.optimization.report import OptimizationResult
from domainflow.registry import aliases, integrity, mlflow_registry
from domainflow.store.database import open_database
from domainflow.summary import DomainOutcome, artifact_key, summarize_domain
from domainflow.tracking import log_domain_run
from domainflow.training.candidates import CandidateScores
from domainflow.training.trainer import TrainedNetwork
from domainflow.tuning.study import TuningResult

from .policies import IO_RETRY_DELAYS, retry_unless_user_error

_MLFLOW_RETRIES = dict(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_unless_user_error)


@task(**_MLFLOW_RETRIES)
def prepare_tracking_store(tracking_uri: str) -> None:
    """Before domains train in parallel: the store's schema is built once, not raced by every worker."""
    mlflow_registry.open_tracking_store(tracking_uri)


@task(**_MLFLOW_RETRIES)
def log_training_run(
    tracking_uri: str,
    artifact_root: str,
    domain: str,
    config: PipelineConfig,
    source_fingerprint: str,
    outcome: ValidationOutcome,
    split: TimeSplit,
    pipeline: FeaturePipeline,
    tuning: TuningResult,
    network: TrainedNetwork,
    optimized: OptimizationResult,
    scores: CandidateScores,
    evaluation: CandidateEvaluation,
) -> mlflow_registry.LoggedRun:
    """Trials become child runs; the served variant is the run's model."""
    with mlflow_registry.explained_store_errors(tracking_uri):
        logged = log_domain_run(
            tracking_uri, artifact_root, domain, config, source_fingerprint, outcome, split, pipeline,
            tuning, network, optimized, scores, evaluation,
        )  # fmt: skip
    get_run_logger().info("mlflow run_id=%s reused=%s model=%s", logged.run_id, logged.reused, logged.model_uri)
    return logged


@task(**_MLFLOW_RETRIES)
def register_model_version(
    tracking_uri: str, domain: str, config: PipelineConfig, logged: mlflow_registry.LoggedRun
) -> str:
    """The version carries the run's tags (data, config, code) and the digest of its files, checked before serving."""
    name = config.registered_model_name(domain)
    description = f"{config.name}: delay model for {config.domains.column} = {domain}, trained by domainflow."
    with mlflow_registry.explained_store_errors(tracking_uri):
        version = integrity.register_verified_version(tracking_uri, name, logged, logged.version_tags, description)
    get_run_logger().info("registered model=%s version=%s", name, version)
    return version


@task(**_MLFLOW_RETRIES)
def apply_quality_gate(
    tracking_uri: str,
    database_url: str,
    domain: str,
    config: PipelineConfig,
    version: str,
    evaluation: CandidateEvaluation,
) -> mlflow_registry.GateDecision:
    """Gates the alias: only a version that passed every check becomes `challenger`; the moves are audited."""
    verdict = evaluation.verdict
    with mlflow_registry.explained_store_errors(tracking_uri):
        decision = aliases.apply_gate_verdict(
            tracking_uri, open_database(database_url), domain, config.registered_model_name(domain), version,
            verdict.passed, verdict.reason, verdict.failed_checks, actor=f"prefect-flow-run/{flow_run.id or 'local'}",
        )  # fmt: skip
    log = get_run_logger().info if decision.passed else get_run_logger().warning
    log("gate domain=%s version=%s passed=%s aliases=%s (%s)",
        domain, version, decision.passed, decision.aliases, decision.reason)  # fmt: skip
    return decision


@task
def summarize_domain_run(
    domain: str,
    config: PipelineConfig,
    outcome: ValidationOutcome,
    split: TimeSplit,
    tuning: TuningResult,
    optimized: OptimizationResult,
    scores: CandidateScores,
    evaluation: CandidateEvaluation,
    logged: mlflow_registry.LoggedRun,
    version: str,
    decision: mlflow_registry.GateDecision,
) -> DomainOutcome:
    summary = summarize_domain(
        domain, config, outcome, split, tuning, optimized, scores, evaluation, logged, version, decision
    )
    create_markdown_artifact(
        summary.to_markdown(), key=artifact_key("training", config.name, domain), description=f"{domain} training run"
    )
    return summary
