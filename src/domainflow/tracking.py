"""What a domain's training run records in MLflow, assembled from the stage outputs, and in the audit log.

Exact row counts stay in this process (terminal, local logs, quarantine
files); what reaches MLflow is differentially private (`dp_*` metrics), and
the Great Expectations result is logged without its counts and row values.
The audit log's rows of a training name its windows by their dates, not their rows.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import joblib

from domainflow.calibration.report import write_reliability_diagram
from domainflow.candidates.gate import CandidateEvaluation
from domainflow.candidates.scores import SCORED_SPLITS, TrainedCandidate
from domainflow.config import PipelineConfig
from domainflow.data.prepared import DomainData
from domainflow.data.privacy import publish_statistics
from domainflow.data.sources import fingerprint_frame
from domainflow.data.split import TimeSplit
from domainflow.data.validation import ValidationOutcome
from domainflow.models.lightning import TrainedNetwork
from domainflow.models.predictors import SUFFIXES
from domainflow.registry.mlflow_registry import TAG, LoggedRun, RunRecord, log_run
from domainflow.store.audit import AuditTrail
from domainflow.tuning.mlflow_trials import log_trials_as_child_runs, tuning_metrics, tuning_params
from domainflow.tuning.study import TuningResult

_GX_PRIVATE_KEYS = ("element_count", "unexpected_count", "missing_count", "unexpected_percent",
                    "unexpected_percent_total", "unexpected_percent_nonmissing", "missing_percent",
                    "partial_unexpected_list", "partial_unexpected_counts", "partial_unexpected_index_list",
                    "observed_value")  # fmt: skip


@functools.cache
def code_version() -> str:
    """Package version plus a hash of the library's source: changes whenever the code does."""
    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{importlib.metadata.version('domainflow')}+{digest.hexdigest()[:12]}"


def training_run_key(domain: str, trained_on: str, config: PipelineConfig) -> str:
    """The training's identity: domain, the rows it reads (`DomainData.trained_on`), the settings that shape the
    model (`model_hash`), code."""
    payload = "|".join([domain, trained_on, config.model_hash(), code_version()])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def run_key(data: DomainData, config: PipelineConfig, family: str) -> str:
    """The MLflow run of the family chosen for the domain: a rerun with the same training finds it."""
    return f"{training_run_key(data.domain, data.trained_on, config)}-{family}"


def lifecycle_key(domain: str, source_fingerprint: str, config: PipelineConfig) -> str:
    """A domain's whole lifecycle's identity: the whole source (its held-out months are replayed), every
    setting (gate, canary, loop) and the code."""
    payload = "|".join([domain, source_fingerprint, config.config_hash(), code_version()])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def name_tuning_study(domain: str, trained_on: str, config: PipelineConfig) -> str:
    """Same training rows and settings, same study: with a database storage a rerun resumes it instead of
    starting over."""
    return f"{config.name}-{domain}-{training_run_key(domain, trained_on, config)}"


def record_training_started(trail: AuditTrail, data: DomainData, config: PipelineConfig) -> None:
    """The `training_started` row, subject the training's key: the model, its windows and the settings' hash."""
    bounds = data.split.bounds
    after = {"model": config.registered_model_name(data.domain),
             "windows": bounds.model_dump(mode="json") if bounds is not None else None,
             "model_hash": config.model_hash(), "code_version": code_version()}  # fmt: skip
    reason = f"training {data.domain}"
    if bounds is not None:
        reason += (f": train before {bounds.train_until:%Y-%m-%d}, validate to {bounds.validation_until:%Y-%m-%d}, "
                   f"test to {bounds.test_until:%Y-%m-%d}")  # fmt: skip
    trail.record("training_started", training_run_key(data.domain, data.trained_on, config), None, after, reason)


def record_training_ended(
    trail: AuditTrail, data: DomainData, config: PipelineConfig, candidate: TrainedCandidate
) -> None:
    """The `training_ended` row, subject the training's key: each family's validation and test AUC."""
    # PostgreSQL's JSON refuses NaN: an AUC that cannot be computed (one class in a window) is unknown.
    scores = {family: {part: round(auc, 6) if math.isfinite(auc := by_split[part]["auc"]) else None
                       for part in SCORED_SPLITS}
              for family, by_split in candidate.scores.by_family.items()}  # fmt: skip
    after = {"auc": scores, "network_epochs": candidate.network.epochs_run,
             "tuning_trials": candidate.tuning.n_complete}  # fmt: skip
    reason = "trained " + ", ".join(f"{family} (test AUC {auc['test']})" for family, auc in scores.items())
    trail.record("training_ended", training_run_key(data.domain, data.trained_on, config), None, after, reason)


def public_gx_result(gx_result: dict) -> dict:
    """The GX result with counts and row values removed: which expectations ran and passed."""
    results = []
    for item in gx_result.get("results", []):
        details = {k: v for k, v in item.get("result", {}).items() if k not in _GX_PRIVATE_KEYS}
        results.append({**item, "result": details})
    statistics = {k: v for k, v in gx_result.get("statistics", {}).items() if k == "success_percent"}
    return {**gx_result, "results": results, "statistics": statistics}


@dataclass(frozen=True)
class VersionTags:
    """Tags every registered version carries, so a version can be traced to its inputs."""

    data_fingerprint: str
    source_fingerprint: str
    config_hash: str
    code_version: str
    domain: str

    def as_tags(self) -> dict[str, str]:
        return {f"{TAG}{k}": v for k, v in self.__dict__.items()}


def version_tags(
    domain: str, source_fingerprint: str, config: PipelineConfig, outcome: ValidationOutcome
) -> VersionTags:
    return VersionTags(
        data_fingerprint=fingerprint_frame(outcome.valid),
        source_fingerprint=source_fingerprint,
        config_hash=config.config_hash(),
        code_version=code_version(),
        domain=domain,
    )


def _params(domain: str, config: PipelineConfig, network: TrainedNetwork, tuning: TuningResult) -> dict:
    sections = {
        "training": config.training.model_dump(),
        "baseline": config.baseline.model_dump(),
        "candidates": config.candidates.model_dump(mode="json"),
        "calibration": config.calibration.model_dump(mode="json"),
        "split": config.split.model_dump(mode="json"),
        "tuning": config.tuning.model_dump(mode="json", exclude={"storage"}),  # a URL may hold a password
        "optimization": config.optimization.model_dump(mode="json"),
        "gate": config.gate.model_dump(mode="json"),
    }
    params = {f"{section}.{k}": v for section, values in sections.items() for k, v in values.items()}
    # What the final training actually used, after tuning.
    params |= {f"final.{k}": v for k, v in network.hparams.items() if k not in ("numeric_width", "cardinalities")}
    return {"domain": domain, **params, **tuning_params(tuning),
            "privacy.epsilon_per_statistic": config.privacy.epsilon_per_statistic}  # fmt: skip


def _calibration_files(candidate: TrainedCandidate, split: TimeSplit, scratch: Path) -> dict[str, Path]:
    """Per family, a reliability diagram on the test rows (which the map did not see), before and after its map."""
    features, labels = candidate.pipeline.transform(split.test), split.labels("test")
    files = {}
    for family in candidate.families:
        raw = family.model.predictor().predict(features)
        curves = {"before": raw, "after": family.calibration.apply(raw)} if family.calibration.fitted else {"raw": raw}
        title = f"{family.family}: {split.window('test')}"
        files[f"calibration/{family.family}"] = write_reliability_diagram(
            labels, curves, title, scratch / "calibration" / family.family / "reliability.png"
        )
    return files


def _calibration_metrics(candidate: TrainedCandidate) -> dict[str, float]:
    metrics = {}
    for family in candidate.families:
        c = family.calibration
        for when, figures in (("before", c.before), ("after", c.after)):
            metrics |= {f"{family.family}_calibration_{k}_{when}": v for k, v in figures.items()}
    return metrics


def save_served_model(candidate: TrainedCandidate, family: str, scratch: Path) -> tuple[Path, Path | None]:
    """The chosen family's variant file and its calibration map's, as the registered model's artifacts."""
    chosen = candidate.family(family)
    model = chosen.model
    model_file = scratch / "model" / f"{model.variant}{SUFFIXES[model.format]}"
    model_file.parent.mkdir(parents=True, exist_ok=True)
    model_file.write_bytes(model.payload)
    if chosen.calibration.calibrator is None:
        return model_file, None
    calibration_file = scratch / "model" / "calibration.joblib"
    joblib.dump(chosen.calibration.calibrator, calibration_file)
    return model_file, calibration_file


def log_training_run(
    tracking_uri: str,
    artifact_root: str,
    config: PipelineConfig,
    data: DomainData,
    candidate: TrainedCandidate,
    evaluation: CandidateEvaluation,
    *,
    logged_by: str = "",
) -> LoggedRun:
    """The run with its trials as child runs, every family's figures, calibration and verdict, and its report.

    `logged_by`: the Prefect flow run logging it, tagged on the run (where a model came from, and
    how a later flow run tells it found the run rather than logged it).

    The model logged is the family the gates chose, in its served variant, with its calibration
    map; the others are recorded by their figures only.
    """
    domain, outcome, split = data.domain, data.validation, data.split
    tuning, network, optimized, scores = candidate.tuning, candidate.network, candidate.optimized, candidate.scores
    pipeline, chosen = candidate.pipeline, candidate.family(evaluation.family)
    published, ledger = publish_statistics(
        counts={
            "rows_in": outcome.rows_in,
            "rows_kept": len(outcome.valid),
            "rows_quarantined": len(outcome.quarantined),
            "train_rows": len(split.train),
            "validation_rows": len(split.validation),
            "test_rows": len(split.test),
        },
        rates={"train_label_rate": (int(split.labels("train").sum()), len(split.train))},
        epsilon=config.privacy.epsilon_per_statistic,
        budget=config.privacy.budget_per_run,
        seed=config.privacy.seed,
    )
    tags = version_tags(domain, data.source_fingerprint, config, outcome).as_tags()
    tags |= {
        f"{TAG}family": evaluation.family,
        f"{TAG}served_variant": chosen.model.variant,
        f"{TAG}calibration": chosen.calibration.method or "none",
        f"{TAG}gate": "passed" if evaluation.verdict.passed else "failed",
    }
    metrics = {**scores.flat(), **published, **tuning_metrics(tuning), **optimized.metrics(),
               **evaluation.verdict.metrics(), **_calibration_metrics(candidate),
               "network_epochs": network.epochs_run, "network_best_val_auc": network.best_val_auc,
               "privacy_epsilon_spent": ledger.spent}  # fmt: skip
    sample = split.validation[config.data.features].head(200)
    with tempfile.TemporaryDirectory() as scratch:
        model_file, calibration_file = save_served_model(candidate, evaluation.family, Path(scratch))
        files = _calibration_files(candidate, split, Path(scratch))
        if evaluation.report_path:
            files["evaluation"] = Path(evaluation.report_path)
        record = RunRecord(
            experiment=config.experiment_name(domain),
            run_name=f"train-{domain}",
            # A changed gate may choose another family: that is another model, so another run.
            run_key=run_key(data, config, evaluation.family),
            params=_params(domain, config, network, tuning),
            metrics=metrics,
            tags=tags,
            pipeline=pipeline,
            model_file=model_file,
            calibration_file=calibration_file,
            signature_sample=sample,
            signature_scores=chosen.predictor().predict(pipeline.transform(sample)),
            history=network.history,
            logged_by=logged_by,
            documents={
                "config.json": config.model_dump(mode="json"),
                "validation/great_expectations.json": public_gx_result(outcome.gx_result),
                "privacy/ledger.json": {
                    "budget": ledger.budget,
                    "spent": ledger.spent,
                    "releases": [{"statistic": s, "epsilon": e} for s, e in ledger.entries],
                },
                "evaluation/gate_verdict.json": evaluation.verdict.to_dict(),
                "evaluation/families.json": evaluation.to_dict(),
                "calibration/maps.json": {f.family: f.calibration.to_dict() for f in candidate.families},
                "optimization/variants.json": {
                    "chosen": optimized.chosen,
                    "reason": optimized.reason,
                    "variants": [asdict(r) for r in optimized.variants],
                },
            },  # fmt: skip
            files=files,
        )
        logged = log_run(tracking_uri, artifact_root, record)
    log_trials_as_child_runs(tracking_uri, logged.run_id, tuning)
    return logged
