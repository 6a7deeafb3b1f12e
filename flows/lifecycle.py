"""run_lifecycle: every configured domain through training, the canary, and the monitoring loop.

The flow behind `domainflow run`. With `serving_url` (the CLI starts a server for the run):
each domain's challenger is canary-promoted under replayed held-out traffic; then the loop
closes: the held-out months before `replay.monitor_until` are served to the champion,
monitoring checks them, and a retraining event retrains the domain, whose challenger goes
through the canary on the months after. With deployments (prefect.yaml) the same events
start the `retrain` deployment through its trigger; here the run acts on them in-process.

A domain that has no champion after training (its first version rejected) has nothing to serve:
it sits out the canary, the replay and monitoring, and the others carry on without waiting for it.
"""

from __future__ import annotations

from prefect import flow
from prefect.states import Completed, Failed

from domainflow.config import PipelineConfig
from domainflow.flows.domain_monitoring import monitor_domain
from domainflow.flows.promotion import promote_challenger
from domainflow.flows.retraining import retrain_domain
from domainflow.flows.training import train_domain_model
from domainflow.settings import resolve_settings
from domainflow.summary import DomainOutcome, summarize_lifecycle
from domainflow.tasks.data import fingerprint_source, load_source, prepare_domain, select_domains
from domainflow.tasks.lifecycle import current_alias_version, keep_outcome, stored_outcomes, train_domain
from domainflow.tasks.registry import open_tracking_store
from domainflow.tasks.replay import plot_timeline, replay_held_out_months
from domainflow.tasks.training import domain_worker_pool


@flow(name="domain-lifecycle", log_prints=True)
def run_lifecycle(config: PipelineConfig = PipelineConfig(), serving_url: str | None = None):
    """One failing domain does not stop the others; the run fails at the end, naming it, with every outcome.

    A version the gates reject, or a canary rolled back, is an outcome, not a failure: the run
    completes and its message names it, unless the domain is left without a champion to serve.
    """
    settings = resolve_settings()
    fingerprint = fingerprint_source(config.data.source)
    frame = load_source(config.data.source, fingerprint, config.source_columns())
    domains = select_domains(frame, config.domains)

    # Up to scale.domain_workers domains at once, each in a worker process; one by one in this process at 1.
    if config.scale.domain_workers > 1 and len(domains) > 1:
        open_tracking_store(settings.tracking_uri)  # its schema built once here, not raced by the workers
        with domain_worker_pool(config.scale, len(domains)) as pool:
            futures = [pool.submit(train_domain, {"domain": d, "config": config, "source_fingerprint": fingerprint})
                       for d in domains]  # fmt: skip
            for future in futures:
                future.wait()
        states = [future.state for future in futures]
    else:
        states = [train_domain_model(domain, config, fingerprint, return_state=True) for domain in domains]
    outcomes = [DomainOutcome.from_training(domain, state.result(raise_on_failure=False))
                for domain, state in zip(domains, states, strict=True)]  # fmt: skip

    # A domain this run's inputs (data, config, code) already took through its canary and loop reports
    # that outcome as stored: acting again would canary, replay and retrain on the world the first run left.
    if serving_url:
        outcomes = stored_outcomes(settings, fingerprint, config, outcomes)
    # A domain without a champion has nothing to serve: the steps below leave it out.
    for index, outcome in enumerate(outcomes):
        if outcome.acting:
            champion = current_alias_version(settings, outcome.domain, config, "champion", return_state=True)
            outcomes[index] = outcome.after_finding_champion(champion.result(raise_on_failure=False))

    if serving_url:
        for index, outcome in enumerate(outcomes):
            if outcome.acting:
                # In a loop run the first canary sees the months before replay.monitor_until, the loop's "present".
                promoted = promote_challenger(outcome.domain, config, serving_url, config.replay.monitor_until,
                                              return_state=True)  # fmt: skip
                outcomes[index] = outcome.after_promotion(promoted.result(raise_on_failure=False))

    if serving_url and config.replay.monitor_until is not None and any(o.acting for o in outcomes):
        for index, outcome in enumerate(outcomes):
            if outcome.acting:
                data = prepare_domain(frame, outcome.domain, fingerprint, config, settings.quarantine_root)
                replayed = replay_held_out_months(serving_url, outcome.domain, data.split, config,
                                                  config.replay.monitor_until, return_state=True)  # fmt: skip
                outcome = outcome.after_replay(replayed.result(raise_on_failure=False))
            if outcome.acting:
                monitored = monitor_domain(outcome.domain, config, return_state=True)
                outcome = outcome.after_monitoring(monitored.result(raise_on_failure=False))
            if outcome.acting and outcome.retraining_event:
                retrained = retrain_domain(outcome.domain, config, reason=outcome.retraining_event,
                                           serving_url=serving_url, event_id=outcome.retraining_event_id,
                                           return_state=True)  # fmt: skip
                outcome = outcome.after_retraining(retrained.result(raise_on_failure=False))
            outcomes[index] = outcome
        plot_timeline(outcomes, config, str(settings.reports_dir))

    if serving_url:
        for outcome in outcomes:
            if outcome.acting:
                keep_outcome(settings, fingerprint, config, outcome)

    summary = summarize_lifecycle(outcomes)
    return (Failed if summary.failed else Completed)(message=summary.message, data=outcomes)
