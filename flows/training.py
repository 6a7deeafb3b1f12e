"""train_domain_model: one domain from raw data to a tuned, optimized, gated MLflow model version.

read the source -> prepare the domain's data (quarantine, split) -> featurize -> (audit the start) tune ->
train the network and gradient boosting -> optimize the network's variants -> calibrate each family ->
score (audit the end) -> gate each family and choose -> log -> register the chosen family -> apply the verdict.

Every stage is cached on what it reads, so a rerun with the same inputs is answered from Prefect's
cache. The three that write to MLflow are idempotent; they are refreshed when the version they
registered is no longer in the registry (deleted by hand), so it is registered again.
"""

from __future__ import annotations

from prefect import flow
from prefect.states import Completed

from domainflow.config import PipelineConfig
from domainflow.settings import resolve_settings
from domainflow.tasks.candidates import calibrate_families, evaluate_candidate, score_candidates
from domainflow.tasks.data import (
    fingerprint_source,
    fit_feature_pipeline,
    load_source,
    name_tuning_study,
    prepare_domain,
)
from domainflow.tasks.registry import (
    apply_gate_verdict,
    log_training_run,
    register_model_version,
    registered_version,
    summarize_domain_run,
)
from domainflow.tasks.training import (
    optimize_for_serving,
    record_training_ended,
    record_training_started,
    summarize_tuning,
    train_baseline,
    train_network,
    tune_hyperparameters,
)


@flow(name="train-domain-model", flow_run_name="train-{domain}", log_prints=True)
def train_domain_model(domain: str, config: PipelineConfig = PipelineConfig(), source_fingerprint: str | None = None):
    """Completes with the DomainOutcome; a version the gates rejected ends in a `Rejected` state naming the checks.

    `source_fingerprint`: the source as the calling flow read it (the lifecycle), so every domain
    trains on the same snapshot; left out, the source is fingerprinted here.
    """
    settings = resolve_settings()
    work_root = str(settings.checkpoint_dir)
    fingerprint = source_fingerprint or fingerprint_source(config.data.source)
    frame = load_source(config.data.source, fingerprint, config.source_columns())
    data = prepare_domain(frame, domain, fingerprint, config, settings.quarantine_root)
    pipeline = fit_feature_pipeline(data.split, config.data)

    study = name_tuning_study(domain, data.trained_on, config)
    record_training_started(settings, data, config)
    workers = [
        tune_hyperparameters.submit(pipeline, data.split, config.training, config.tuning, study, work_root, worker)
        for worker in range(config.tuning.workers)
    ]
    tuning = summarize_tuning([w.result() for w in workers], config.tuning)
    network = train_network(pipeline, data.split, config.training, tuning.best_params, work_root)
    baseline = train_baseline(pipeline, data.split, config.baseline, config.training.seed)
    optimized = optimize_for_serving(pipeline, data.split, network, config.optimization)
    families = calibrate_families(pipeline, data.split, optimized, baseline, config.calibration)
    candidate = score_candidates(pipeline, data.split, tuning, network, optimized, families)
    record_training_ended(settings, data, config, candidate)
    evaluation = evaluate_candidate(settings, config, data, candidate)

    registered = registered_version(settings, config, data, evaluation)
    record = {"refresh_cache": registered is None}  # nothing (left) in the registry: write it, not the cache
    logged = log_training_run.with_options(**record)(settings, config, data, candidate, evaluation)
    version = register_model_version.with_options(**record)(settings, domain, config, logged)
    decision = apply_gate_verdict.with_options(**record)(settings, domain, config, version, evaluation)
    outcome = summarize_domain_run(config, data, candidate, evaluation, logged, version, decision)
    if outcome.status == "rejected":
        return Completed(name="Rejected", message=f"{domain} v{version} rejected: {outcome.gate}", data=outcome)
    return outcome
