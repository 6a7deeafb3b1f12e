"""The candidates once trained: each family calibrated, scored on the validation and test rows, then gated."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from sklearn.ensemble import HistGradientBoostingClassifier

from domainflow import tracking
from domainflow.candidates import gate, scores
from domainflow.candidates.gate import CandidateEvaluation
from domainflow.candidates.scores import CalibratedFamily, TrainedCandidate
from domainflow.config import CalibrationConfig, PipelineConfig
from domainflow.data.features import FeaturePipeline
from domainflow.data.prepared import DomainData
from domainflow.data.split import TimeSplit
from domainflow.models.lightning import TrainedNetwork
from domainflow.optimization.report import OptimizationResult
from domainflow.settings import Settings
from domainflow.summary import artifact_key
from domainflow.tuning.study import TuningResult

from .policies import CACHED_STAGE, JUDGED_ONCE, RETRY_IO


@task(cache_policy=CACHED_STAGE)
def calibrate_families(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    optimized: OptimizationResult,
    baseline: HistGradientBoostingClassifier,
    config: CalibrationConfig,
) -> tuple[CalibratedFamily, ...]:
    """Each family's calibration map, fitted on the validation rows; a window too small is reported, not skipped."""
    families = scores.calibrate_families(pipeline, split, optimized, baseline, config)
    for family in families:
        c = family.calibration
        if c.fitted:
            get_run_logger().info("calibration family=%s method=%s rows=%d ece=%.4f->%.4f log_loss=%.4f->%.4f",
                                  family.family, c.method, c.window.rows, c.before["ece"], c.after["ece"],
                                  c.before["log_loss"], c.after["log_loss"])  # fmt: skip
        else:
            get_run_logger().warning("calibration family=%s not fitted: %s", family.family, c.problem)
    return families


@task(cache_policy=CACHED_STAGE)
def score_candidates(
    pipeline: FeaturePipeline,
    split: TimeSplit,
    tuning: TuningResult,
    network: TrainedNetwork,
    optimized: OptimizationResult,
    families: tuple[CalibratedFamily, ...],
) -> TrainedCandidate:
    candidate = scores.score_candidates(pipeline, split, tuning, network, optimized, families)
    get_run_logger().info("scores %s", " ".join(
        f"{family}_{part}_auc={by_split[part]['auc']:.4f}"
        for family, by_split in candidate.scores.by_family.items() for part in scores.SCORED_SPLITS
    ))  # fmt: skip
    return candidate


@task(cache_policy=JUDGED_ONCE, **RETRY_IO)
def evaluate_candidate(
    settings: Settings, config: PipelineConfig, data: DomainData, candidate: TrainedCandidate
) -> CandidateEvaluation:
    """Retried: it reads the champion from the registry. Judged once per input (see JUDGED_ONCE)."""
    domain, name = data.domain, config.registered_model_name(data.domain)
    report = Path(settings.reports_dir) / config.name / domain / "classification.html"
    own_training = tracking.training_run_key(domain, data.trained_on, config)
    evaluation = gate.evaluate_candidate(settings.tracking_uri, name, config, data.split, candidate, report,
                                         own_training=own_training)  # fmt: skip
    verdict = evaluation.verdict
    create_markdown_artifact(
        f"## {name}: candidates vs {verdict.reference}\n\n{evaluation.to_markdown()}",
        key=artifact_key("gate", config.name, domain),
        description=f"{domain} quality gate: {'passed' if verdict.passed else 'failed'}",
    )
    log = get_run_logger().info if verdict.passed else get_run_logger().warning
    log("gate domain=%s family=%s passed=%s reference=%s %s; %s report=%s", domain, evaluation.family,
        verdict.passed, verdict.reference, verdict.reason, evaluation.selection, evaluation.report_path)  # fmt: skip
    return evaluation
