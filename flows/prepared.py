"""The data steps every domain flow starts with: read the source, keep the domain's valid rows, split them by time."""

from __future__ import annotations

from domainflow.config import PipelineConfig
from domainflow.settings import Settings
from domainflow.tasks.data import (
    filter_domain_rows,
    fingerprint_data_source,
    load_dataset,
    quarantine_invalid_rows,
    split_by_time,
)


def prepare_domain(domain: str, config: PipelineConfig, settings: Settings) -> tuple:
    """(source fingerprint, ValidationOutcome, TimeSplit); cached task by task, so a second flow reads nothing again."""
    fingerprint = fingerprint_data_source(config.data.source)
    frame = load_dataset(config.data.source, fingerprint, config.source_columns())
    rows = filter_domain_rows(frame, config.domains.column, domain)
    outcome = quarantine_invalid_rows(rows, config.data, config.validation, domain, settings.quarantine_root)
    split = split_by_time(outcome.valid, config.data.timestamp, config.split)
    return fingerprint, outcome, split
