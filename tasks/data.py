"""Data-stage tasks: read the source, choose domains, prepare a domain's data (quarantine, split), featurize."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from domainflow import tracking
from domainflow.config import DatasetSchema, DomainSpec, PipelineConfig
from domainflow.data import domains, features, prepared, sources
from domainflow.data.features import FeaturePipeline
from domainflow.data.prepared import DomainData
from domainflow.data.split import TimeSplit

from .policies import CACHED_STAGE, PREPARED_DATA, RETRY_IO, SAME_TRAINING


@task(**RETRY_IO)
def fingerprint_source(uri: str) -> str:
    """Identity of the source data; it keys the load cache, so new data is always re-read."""
    return sources.fingerprint_source(uri)


@task(cache_policy=CACHED_STAGE, **RETRY_IO)
def load_source(uri: str, fingerprint: str, columns: list[str]) -> pd.DataFrame:
    """Read the columns a run uses from the source; `fingerprint` is only a cache key."""
    frame = sources.load_source(uri, columns)
    get_run_logger().info("loaded source=%s fingerprint=%s rows=%d columns=%d", uri, fingerprint, *frame.shape)
    return frame


@task(cache_policy=CACHED_STAGE)
def select_domains(frame: pd.DataFrame, spec: DomainSpec) -> list[str]:
    chosen = domains.select_domains(frame, spec)
    get_run_logger().info("domains column=%s chosen=%s", spec.column, chosen)
    return chosen


@task(cache_policy=PREPARED_DATA)
def prepare_domain(
    frame: pd.DataFrame, domain: str, source_fingerprint: str, config: PipelineConfig, quarantine_root: str
) -> DomainData:
    """The domain's valid rows split by time. Gates the run: fails when the quarantined share exceeds
    validation.max_quarantine_share."""
    run_folder = flow_run.root_flow_run_id or flow_run.id or "local"
    path = f"{quarantine_root}/{run_folder}/{domain}.csv"  # a folder or an s3:// prefix
    data = prepared.prepare_domain(frame, domain, source_fingerprint, config, path)
    outcome, logger = data.validation, get_run_logger()
    logger.info(
        "validation domain=%s rows_in=%d rows_kept=%d rows_quarantined=%d quarantine=%s",
        domain, outcome.rows_in, len(outcome.valid), len(outcome.quarantined), outcome.quarantine_path,
    )  # fmt: skip
    logger.info("split domain=%s %s", domain, " ".join(f"{k}={v}" for k, v in data.split.sizes().items()))
    return data


@task(cache_policy=CACHED_STAGE)
def fit_feature_pipeline(split: TimeSplit, schema: DatasetSchema) -> FeaturePipeline:
    """Fitted on the training rows only, so validation and test stay unseen."""
    pipeline = features.fit_feature_pipeline(split, schema)
    get_run_logger().info(
        "features numeric_width=%d categorical_cardinalities=%s", pipeline.numeric_width, pipeline.cardinalities
    )
    return pipeline


@task(cache_policy=SAME_TRAINING)
def name_tuning_study(domain: str, trained_on: str, config: PipelineConfig) -> str:
    """Named by the rows the training reads and its settings, so a rerun after a crash resumes the same study."""
    return tracking.name_tuning_study(domain, trained_on, config)
