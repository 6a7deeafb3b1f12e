"""train_domain_model: one domain from raw data to a tuned, optimized, gated MLflow model version.

filter -> validate -> split/featurize -> tune -> train -> optimize -> evaluate/gate -> register.
"""

from __future__ import annotations

from prefect import flow
from prefect.states import Completed

from domainflow.config import PipelineConfig
from domainflow.flows.prepared import prepare_domain
from domainflow.settings import resolve_settings
from domainflow.tasks.data import fit_feature_pipeline, name_tuning_study
from domainflow.tasks.evaluation import evaluate_candidate
from domainflow.tasks.registry import apply_quality_gate, log_training_run, register_model_version, summarize_domain_run
from domainflow.tasks.training import (
    optimize_for_serving,
    score_candidates,
    summarize_tuning,
    train_baseline,
    train_network,
    tune_hyperparameters,
)


@flow(name="train-domain-model", flow_run_name="train-{domain}", log_prints=True)
def train_domain_model(domain: str, config: PipelineConfig = PipelineConfig()):
    """Completes with the DomainOutcome; a version the gates rejected ends in a `Rejected` state naming the checks."""
    settings = resolve_settings()
    fingerprint, outcome, split = prepare_domain(domain, config, settings)
    pipeline = fit_feature_pipeline(split, config.data)

    study = name_tuning_study(domain, fingerprint, config)
    workers = [
        tune_hyperparameters.submit(
            pipeline, split, config.training, config.tuning, study, str(settings.checkpoint_dir), worker
        )
        for worker in range(config.tuning.workers)
    ]
    tuning = summarize_tuning([w.result() for w in workers], config.tuning)
    network = train_network(pipeline, split, config.training, tuning, str(settings.checkpoint_dir))
    baseline = train_baseline(pipeline, split, config.baseline, config.training.seed)
    optimized = optimize_for_serving(pipeline, split, network, config.optimization)
    scores = score_candidates(pipeline, split, optimized, baseline)
    evaluation = evaluate_candidate(
        settings.tracking_uri, domain, config, pipeline, split, optimized, baseline, scores, str(settings.reports_dir)
    )

    logged = log_training_run(
        settings.tracking_uri, settings.artifact_root, domain, config, fingerprint,
        outcome, split, pipeline, tuning, network, optimized, scores, evaluation,
    )  # fmt: skip
    version = register_model_version(settings.tracking_uri, domain, config, logged)
    decision = apply_quality_gate(settings.tracking_uri, settings.database_url, domain, config, version, evaluation)
    summary = summarize_domain_run(
        domain, config, outcome, split, tuning, optimized, scores, evaluation, logged, version, decision
    )
    if summary.status == "rejected":
        return Completed(name="Rejected", message=f"{domain} v{version} rejected: {summary.gate}", data=summary)
    return summary
