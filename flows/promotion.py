"""promote_challenger: a domain's `challenger` through the canary steps against its `champion`.

With `serving_url` the domain's held-out months are replayed to that server as live
traffic while the controller decides; without it, the controller judges whatever
traffic the server already gets (a deployment's case).
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow

from domainflow.config import PipelineConfig
from domainflow.settings import resolve_settings
from domainflow.tasks.approval import PROMOTION_FLOW, await_approval, settle_approval
from domainflow.tasks.data import fingerprint_source, load_source, prepare_domain
from domainflow.tasks.promotion import (
    admit_challenger,
    pending_challenger,
    refused_promotion,
    run_canary,
    summarize_promotion,
)


@flow(name=PROMOTION_FLOW, flow_run_name="promote-{domain}", log_prints=True)
def promote_challenger(
    domain: str,
    config: PipelineConfig = PipelineConfig(),
    serving_url: str | None = None,
    replay_until: datetime | None = None,
    override_reason: str | None = None,
):
    """Completes with a PromotionSummary: promoted, rolled back, refused, or nothing to promote.

    `replay_until` replays only the held-out rows before it (`domainflow run`'s loop keeps the later months).
    `override_reason` lets a challenger that failed its gates (or has no verdict) through its canary; audited.
    Under `promotion.approval: manual` the run pauses after the canary's last step for the Prefect UI's
    approve/reject form (or `domainflow approve|reject`); no answer in time rolls the canary back.
    """
    settings = resolve_settings()
    pending = pending_challenger(settings, domain, config)
    if pending is None:
        return summarize_promotion(domain, config, None, None)
    challenger, champion = pending
    refusal = admit_challenger(settings, domain, config, challenger, override_reason)
    if refusal is not None:
        return refused_promotion(domain, config, challenger, champion, refusal)
    split = None
    if serving_url:
        fingerprint = fingerprint_source(config.data.source)
        frame = load_source(config.data.source, fingerprint, config.source_columns())
        split = prepare_domain(frame, domain, fingerprint, config, settings.quarantine_root).split
    state, replayed = run_canary(settings, domain, config, challenger, serving_url, split, replay_until)
    if state.awaiting_approval:
        answer = await_approval(state, poll_seconds=config.canary.poll_seconds)
        state = settle_approval(settings, domain, config, challenger, answer)
    return summarize_promotion(domain, config, state, replayed)
