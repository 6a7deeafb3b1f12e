"""What a domain's training run records in MLflow, assembled from the stage outputs.

Exact row counts stay in this process (terminal, local logs, quarantine
files); what reaches MLflow is differentially private (`dp_*` metrics), and
the Great Expectations result is logged without its counts and row values.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from domainflow.config import PipelineConfig
from domainflow.data.features import FeaturePipeline
from domainflow.data.privacy import publish_statistics
from domainflow.data.sources import fingerprint_frame
from domainflow.data.split import TimeSplit
from domainflow.data.validation import LABEL_COLUMN, ValidationOutcome
from domainflow.registry.mlflow_registry import TAG, LoggedRun, RunRecord, log_training_run
from domainflow.training.candidates import CandidateScores
from domainflow.training.trainer import TrainedNetwork

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


def training_run_key(domain: str, source_fingerprint: str, config: PipelineConfig) -> str:
    payload = "|".join([domain, source_fingerprint, config.config_hash(), code_version()])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


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


def log_domain_run(
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
) -> LoggedRun:
    published, ledger = publish_statistics(
        counts={
            "rows_in": outcome.rows_in,
            "rows_kept": len(outcome.valid),
            "rows_quarantined": len(outcome.quarantined),
            "train_rows": len(split.train),
            "validation_rows": len(split.validation),
            "test_rows": len(split.test),
        },
        rates={"train_label_rate": (int(split.train[LABEL_COLUMN].sum()), len(split.train))},
        epsilon=config.privacy.epsilon_per_statistic,
        budget=config.privacy.budget_per_run,
        seed=config.privacy.seed,
    )
    tags = version_tags(domain, source_fingerprint, config, outcome).as_tags()
    params = {
        "domain": domain,
        **{f"training.{k}": v for k, v in config.training.model_dump().items()},
        **{f"baseline.{k}": v for k, v in config.baseline.model_dump().items()},
        **{f"split.{k}": v for k, v in config.split.model_dump(mode="json").items()},
        "gate.min_validation_auc": config.gate.min_validation_auc,
        "privacy.epsilon_per_statistic": config.privacy.epsilon_per_statistic,
    }
    metrics = {**scores.flat(), **published, "network_epochs": network.epochs_run,
               "network_best_val_auc": network.best_val_auc, "privacy_epsilon_spent": ledger.spent}  # fmt: skip
    record = RunRecord(
        experiment=config.experiment_name(domain),
        run_name=f"train-{domain}",
        run_key=training_run_key(domain, source_fingerprint, config),
        params=params,
        metrics=metrics,
        tags=tags,
        network=network,
        pipeline=pipeline,
        signature_sample=split.validation[config.data.features].head(200),
        documents={
            "config.json": config.model_dump(mode="json"),
            "validation/great_expectations.json": public_gx_result(outcome.gx_result),
            "privacy/ledger.json": {
                "budget": ledger.budget,
                "spent": ledger.spent,
                "releases": [{"statistic": s, "epsilon": e} for s, e in ledger.entries],
            },
        },  # fmt: skip
    )
    return log_training_run(tracking_uri, artifact_root, record)
