"""train_domain_model: one domain from raw data to a registered, gated MLflow model version."""

from __future__ import annotations

from prefect import flow

from domainflow.config import PipelineConfig
from domainflow.settings import resolve_settings
from domainflow.summary import DomainOutcome
from domainflow.tasks.data import (
    filter_domain_rows,
    fingerprint_data_source,
    fit_feature_pipeline,
    load_dataset,
    quarantine_invalid_rows,
    split_by_time,
)
from domainflow.tasks.registry import apply_quality_gate, log_training_run, register_model_version, summarize_domain_run
from domainflow.tasks.training import score_candidates, train_baseline, train_network


@flow(name="train-domain-model", flow_run_name="train-{domain}", log_prints=True)
def train_domain_model(domain: str, config: PipelineConfig = PipelineConfig()) -> DomainOutcome:
    settings = resolve_settings()
    fingerprint = fingerprint_data_source(config.data.source)
    frame = load_dataset(config.data.source, fingerprint, config.source_columns())
    rows = filter_domain_rows(frame, config.domains.column, domain)
    outcome = quarantine_invalid_rows(rows, config.data, config.validation, domain, str(settings.quarantine_dir))
    split = split_by_time(outcome.valid, config.data.timestamp, config.split)
    pipeline = fit_feature_pipeline(split, config.data)
    network = train_network(pipeline, split, config.training, str(settings.checkpoint_dir))
    baseline = train_baseline(pipeline, split, config.baseline, config.training.seed)
    scores = score_candidates(pipeline, split, network, baseline)
    logged = log_training_run(
        settings.tracking_uri, settings.artifact_root, domain, config, fingerprint,
        outcome, split, pipeline, network, scores,
    )  # fmt: skip
    version = register_model_version(settings.tracking_uri, domain, config, logged)
    decision = apply_quality_gate(settings.tracking_uri, domain, config, version, scores)
    return summarize_domain_run(domain, config, outcome, split, scores, logged, version, decision)
