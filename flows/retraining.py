"""retrain_domain: one domain retrained on a window that includes its newly labelled months, then canaried.

Started by the `retrain` deployment's trigger on a monitoring event (drift, degraded quality,
a forecast breach), from the UI, or by `domainflow run`'s loop. The new version goes through
the same training DAG and gates as any other, and a challenger through the canary.
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow

from domainflow.config import PipelineConfig
from domainflow.flows.promotion import promote_challenger
from domainflow.flows.training import train_domain_model
from domainflow.settings import resolve_settings
from domainflow.summary import RetrainingOutcome
from domainflow.tasks.retraining import plan_retraining


@flow(name="retrain-domain", flow_run_name="retrain-{domain}", log_prints=True)
def retrain_domain(
    domain: str,
    config: PipelineConfig = PipelineConfig(),
    reason: str = "requested",
    labelled_until: datetime | None = None,
    serving_url: str | None = None,
) -> RetrainingOutcome:
    """`labelled_until` defaults to where the log's labels end; `serving_url` replays the canary's traffic."""
    settings = resolve_settings()
    window = plan_retraining(settings.tracking_uri, settings.database_url, domain, config, labelled_until)
    if window.split is None:
        return RetrainingOutcome(domain=domain, reason=reason, status="skipped", note=window.note)
    retrain_config = config.model_copy(update={"split": window.split})
    state = train_domain_model(domain, retrain_config, return_state=True)
    if not state.is_completed():
        return RetrainingOutcome(domain=domain, reason=reason, status="failed", note=state.message or "training failed",
                                 split=window.split)  # fmt: skip
    training = state.result()
    promotion = promote_challenger(domain, retrain_config, serving_url) if training.status == "registered" else None
    return RetrainingOutcome(domain=domain, reason=reason, status="retrained", note=window.note, split=window.split,
                             training=training, promotion=promotion)  # fmt: skip
