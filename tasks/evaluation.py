"""The gate stage: the served variant against the champion (else the baseline) on the test rows."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from sklearn.ensemble import HistGradientBoostingClassifier

from domainflow.config import PipelineConfig
from domainflow.data.features import FeaturePipeline
from domainflow.data.split import TimeSplit
from domainflow.evaluation.candidate import CandidateEvaluation
from domainflow.optimization.report import OptimizationResult
from domainflow.summary import artifact_key
from domainflow.training import candidates

from .policies import IO_RETRY_DELAYS, retry_unless_user_error


@task(retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=retry_unless_user_error)
def evaluate_candidate(
    tracking_uri: str,
    domain: str,
    config: PipelineConfig,
    pipeline: FeaturePipeline,
    split: TimeSplit,
    optimized: OptimizationResult,
    baseline: HistGradientBoostingClassifier,
    scores: candidates.CandidateScores,
    reports_dir: str,
) -> CandidateEvaluation:
    """Retried: it reads the champion from the registry. The verdict is a Prefect artifact either way."""
    report = Path(reports_dir) / config.name / domain / "classification.html"
    evaluation = candidates.gate_candidate(
        tracking_uri, config.registered_model_name(domain), pipeline, split, optimized, baseline, scores, config, report
    )
    verdict = evaluation.verdict
    create_markdown_artifact(
        f"## {config.registered_model_name(domain)}: candidate vs {verdict.reference}\n\n{verdict.to_markdown()}",
        key=artifact_key("gate", config.name, domain),
        description=f"{domain} quality gate: {'passed' if verdict.passed else 'failed'}",
    )
    log = get_run_logger().info if verdict.passed else get_run_logger().warning
    log("gate domain=%s passed=%s reference=%s %s report=%s", domain, verdict.passed, verdict.reference,
        verdict.reason, evaluation.report_path)  # fmt: skip
    return evaluation
