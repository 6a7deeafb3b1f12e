"""prepare_domain: the data steps every domain flow starts with, as one sub-flow that returns the domain's data.

read the source -> keep the domain's rows -> quarantine invalid rows -> split by time. Each step is
a cached task, so a second flow preparing the same domain reads nothing again.
"""

from __future__ import annotations

from prefect import flow

from domainflow.config import PipelineConfig
from domainflow.data.prepared import DomainData
from domainflow.settings import resolve_settings
from domainflow.tasks.data import filter_domain, fingerprint_source, load_source, quarantine_invalid_rows, split_by_time


@flow(name="prepare-domain", flow_run_name="prepare-{domain}", log_prints=True)
def prepare_domain(domain: str, config: PipelineConfig = PipelineConfig()) -> DomainData:
    settings = resolve_settings()
    fingerprint = fingerprint_source(config.data.source)
    frame = load_source(config.data.source, fingerprint, config.source_columns())
    rows = filter_domain(frame, config.domains.column, domain)
    validation = quarantine_invalid_rows(rows, config.data, config.validation, domain, settings.quarantine_root)
    split = split_by_time(validation.valid, config.data.timestamp, config.split)
    return DomainData(domain=domain, source_fingerprint=fingerprint, validation=validation, split=split)
