"""promote_challenger: a domain's `challenger` through the canary steps against its `champion`.

With `serving_url` the domain's held-out months are replayed to that server as live
traffic while the controller decides; without it, the controller judges whatever
traffic the server already gets (a deployment's case).
"""

from __future__ import annotations

from prefect import flow

from domainflow.config import PipelineConfig
from domainflow.settings import resolve_settings
from domainflow.tasks.data import (
    filter_domain_rows,
    fingerprint_data_source,
    load_dataset,
    quarantine_invalid_rows,
    split_by_time,
)
from domainflow.tasks.promotion import find_challenger, report_promotion, run_canary


@flow(name="promote-challenger", flow_run_name="promote-{domain}", log_prints=True)
def promote_challenger(domain: str, config: PipelineConfig = PipelineConfig(), serving_url: str | None = None):
    """Completes with a PromotionSummary: promoted, rolled back, or nothing to promote."""
    settings = resolve_settings()
    target = find_challenger(settings.tracking_uri, domain, config)
    if target is None:
        return report_promotion(domain, config, None, None)
    version, _champion = target
    split = None
    if serving_url:
        fingerprint = fingerprint_data_source(config.data.source)
        frame = load_dataset(config.data.source, fingerprint, config.source_columns())
        rows = filter_domain_rows(frame, config.domains.column, domain)
        outcome = quarantine_invalid_rows(rows, config.data, config.validation, domain, str(settings.quarantine_dir))
        split = split_by_time(outcome.valid, config.data.timestamp, config.split)
    state, replayed = run_canary(settings.tracking_uri, settings.database_url, domain, config, version, serving_url,
                                 split)  # fmt: skip
    return report_promotion(domain, config, state, replayed)
