"""MLflow tasks: log the run, register the version, apply the gate. Retried: they talk to the tracking server."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from domainflow.config import PipelineConfig
from domainflow.data.features import FeaturePipeline
from domainflow.data.split import TimeSplit
from domainflow.data.validation import ValidationOutcome
from domainflow.registry import mlflow_registry
from domainflow.summary import DomainOutcome, artifact_key, summarize_domain
from domainflow.tracking import log_domain_run
from domainflow.training.candidates import CandidateScores
from domainflow.training.trainer import TrainedNetwork

from .policies import IO_RETRY_DELAYS, retry_unless_user_error

_MLFLOW_RETRIES = dict(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_unless_user_error)


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
    network: TrainedNetwork,
    scores: CandidateScores,
) -> mlflow_registry.LoggedRun:
    logged = log_domain_run(
        tracking_uri, artifact_root, domain, config, source_fingerprint, outcome, split, pipeline, network, scores
    )
    get_run_logger().info("mlflow run_id=%s reused=%s model=%s", logged.run_id, logged.reused, logged.model_uri)
    return logged


@task(**_MLFLOW_RETRIES)
def register_model_version(
    tracking_uri: str, domain: str, config: PipelineConfig, logged: mlflow_registry.LoggedRun
) -> str:
    """The version carries the run's tags, so it traces back to its data, config and code."""
    name = config.registered_model_name(domain)
    description = f"{config.name}: delay model for {config.domains.column} = {domain}, trained by domainflow."
    version = mlflow_registry.register_model_version(tracking_uri, name, logged, logged.version_tags, description)
    get_run_logger().info("registered model=%s version=%s", name, version)
    return version


@task(**_MLFLOW_RETRIES)
def apply_quality_gate(
    tracking_uri: str, domain: str, config: PipelineConfig, version: str, scores: CandidateScores
) -> mlflow_registry.GateDecision:
    """Gates the alias: only a version above the validation-AUC floor becomes `challenger`."""
    decision = mlflow_registry.apply_minimal_gate(
        tracking_uri,
        config.registered_model_name(domain),
        version,
        scores.network["validation"]["auc"],
        config.gate.min_validation_auc,
    )
    log = get_run_logger().info if decision.passed else get_run_logger().warning
    log(
        "gate domain=%s version=%s passed=%s aliases=%s (%s)",
        domain,
        version,
        decision.passed,
        decision.aliases,
        decision.reason,
    )
    return decision


@task
def summarize_domain_run(
    domain: str,
    config: PipelineConfig,
    outcome: ValidationOutcome,
    split: TimeSplit,
    scores: CandidateScores,
    logged: mlflow_registry.LoggedRun,
    version: str,
    decision: mlflow_registry.GateDecision,
) -> DomainOutcome:
    summary = summarize_domain(domain, config, outcome, split, scores, logged, version, decision)
    create_markdown_artifact(
        summary.to_markdown(), key=artifact_key("training", config.name, domain), description=f"{domain} training run"
    )
    return summary
