"""The candidates once trained: scored on the validation and test rows, then gated against the champion."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from sklearn.ensemble import HistGradientBoostingClassifier

from domainflow.candidates import gate, scores
from domainflow.candidates.gate import CandidateEvaluation
from domainflow.candidates.scores import TrainedCandidate
from domainflow.config import PipelineConfig
from domainflow.data.features import FeaturePipeline
from domainflow.data.prepared import DomainData
from domainflow.data.split import TimeSplit
from domainflow.models.lightning import TrainedNetwork
from domainflow.optimization.report import OptimizationResult
from domainflow.settings import Settings
from domainflow.summary import artifact_key
from domainflow.tuning.study import TuningResult

from .policies import RETRY_IO


@task
def score_candidates(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    tuning: TuningResult,
    network: TrainedNetwork,
    optimized: OptimizationResult,
    baseline: HistGradientBoostingClassifier,
) -> TrainedCandidate:
    candidate = scores.score_candidates(pipeline, split, tuning, network, optimized, baseline)
    figures = candidate.scores
    get_run_logger().info(
        "scores network_val_auc=%.4f baseline_val_auc=%.4f network_test_auc=%.4f baseline_test_auc=%.4f",
        figures.network["validation"]["auc"], figures.baseline["validation"]["auc"],
        figures.network["test"]["auc"], figures.baseline["test"]["auc"],
    )  # fmt: skip
    return candidate


@task(**RETRY_IO)
def evaluate_candidate(
    settings: Settings, config: PipelineConfig, data: DomainData, candidate: TrainedCandidate
) -> CandidateEvaluation:
    """Retried: it reads the champion from the registry. The verdict is a Prefect artifact either way."""
    domain, name = data.domain, config.registered_model_name(data.domain)
    report = Path(settings.reports_dir) / config.name / domain / "classification.html"
    evaluation = gate.evaluate_candidate(settings.tracking_uri, name, config, data.split, candidate, report)
    verdict = evaluation.verdict
    create_markdown_artifact(
        f"## {name}: candidate vs {verdict.reference}\n\n{verdict.to_markdown()}",
        key=artifact_key("gate", config.name, domain),
        description=f"{domain} quality gate: {'passed' if verdict.passed else 'failed'}",
    )
    log = get_run_logger().info if verdict.passed else get_run_logger().warning
    log("gate domain=%s passed=%s reference=%s %s report=%s", domain, verdict.passed, verdict.reference,
        verdict.reason, evaluation.report_path)  # fmt: skip
    return evaluation
