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
from domainflow.summary import DomainOutcome, RetrainingOutcome
from domainflow.tasks.retraining import plan_retraining


@flow(name="retrain-domain", flow_run_name="retrain-{domain}", log_prints=True)
def retrain_domain(
    domain: str,
    config: PipelineConfig = PipelineConfig(),
    reason: str = "requested",
    labelled_until: datetime | None = None,
    serving_url: str | None = None,
    event_id: str | None = None,
) -> RetrainingOutcome:
    """`labelled_until` defaults to where the log's labels end; `serving_url` replays the canary's traffic.

    `reason` and `event_id`: the event that triggered the run (its name and Prefect id), for the audit log.
    """
    window = plan_retraining(resolve_settings(), domain, config, labelled_until, reason, event_id)
    if window.split is None:
        return RetrainingOutcome.of(reason, window)
    retrain_config = window.applied_to(config)
    trained = train_domain_model(domain, retrain_config, return_state=True)
    training = DomainOutcome.from_training(domain, trained.result(raise_on_failure=False))
    promotion = promote_challenger(domain, retrain_config, serving_url) if training.status == "registered" else None
    return RetrainingOutcome.of(reason, window, training, promotion)
