"""run_lifecycle: every configured domain through training, the canary, and the monitoring loop.

The flow behind `domainflow run`. With `serving_url` (the CLI starts a server for the run):
each domain's challenger is canary-promoted under replayed held-out traffic; then the loop
closes: the held-out months before `replay.monitor_until` are served to the champion,
monitoring checks them, and a retraining event retrains the domain, whose challenger goes
through the canary on the months after. With deployments (prefect.yaml) the same events
start the `retrain` deployment through its trigger; here the run acts on them in-process.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.states import Completed, Failed

from domainflow.config import PipelineConfig
from domainflow.flows.monitoring import monitor_domain
from domainflow.flows.prepared import prepare_domain
from domainflow.flows.promotion import promote_challenger
from domainflow.flows.retraining import retrain_domain
from domainflow.settings import resolve_settings
from domainflow.summary import DomainOutcome
from domainflow.tasks.data import choose_domains, fingerprint_data_source, load_dataset
from domainflow.tasks.registry import prepare_tracking_store
from domainflow.tasks.replay import plot_lifecycle_timeline, replay_held_out_months
from domainflow.tasks.training import domain_worker_pool


@flow(name="domain-lifecycle", log_prints=True)
def run_lifecycle(config: PipelineConfig = PipelineConfig(), serving_url: str | None = None):
    """One failing domain does not stop the others; the run fails at the end, naming it.

    A version the gates reject, or a canary rolled back, is an outcome, not a failure: the run
    completes and its message names it.
    """
    fingerprint = fingerprint_data_source(config.data.source)
    frame = load_dataset(config.data.source, fingerprint, config.source_columns())
    domains = choose_domains(frame, config.domains)
    outcomes = train_domains(domains, config)
    if serving_url:
        outcomes = [promote(outcome, config, serving_url) for outcome in outcomes]
    if serving_url and config.replay.monitor_until is not None:
        outcomes = [close_the_loop(outcome, config, serving_url) for outcome in outcomes]
        plot_lifecycle_timeline(outcomes, config, str(resolve_settings().reports_dir))
    return lifecycle_state(outcomes)


@task(task_run_name="train-{domain}")
def train_domain(domain: str, config: PipelineConfig) -> DomainOutcome:
    """The domain's training flow, run where the task runs (this process, or a domain worker)."""
    # Imported here, not taken from this module's globals: a worker process then gets the flow from its
    # module, whose annotations resolve. Pickled along with this task, the flow arrives without
    # `PipelineConfig` in its globals and fails to validate its parameters.
    from domainflow.flows.training import train_domain_model

    state = train_domain_model(domain, config, return_state=True)
    return state.result() if state.is_completed() else DomainOutcome.failed(domain, state.message or "failed")


def train_domains(domains: list[str], config: PipelineConfig) -> list[DomainOutcome]:
    """Up to `scale.domain_workers` domains at once, each in a worker process; one by one in this process at 1."""
    if config.scale.domain_workers == 1 or len(domains) == 1:
        states = [train_domain(domain, config, return_state=True) for domain in domains]
    else:
        prepare_tracking_store(resolve_settings().tracking_uri)
        with domain_worker_pool(config.scale, len(domains)) as pool:
            futures = [pool.submit(train_domain, {"domain": domain, "config": config}) for domain in domains]
            for future in futures:
                future.wait()
        states = [future.state for future in futures]
    return [
        state.result() if state.is_completed() else DomainOutcome.failed(domain, state.message or "training failed")
        for domain, state in zip(domains, states, strict=True)
    ]  # fmt: skip


def close_the_loop(outcome: DomainOutcome, config: PipelineConfig, serving_url: str) -> DomainOutcome:
    """Serve the months up to replay.monitor_until, monitor them, and retrain on a retraining event."""
    if outcome.status == "failed":
        return outcome
    domain = outcome.domain
    split = prepare_domain(domain, config, resolve_settings())[2]
    replay_held_out_months(serving_url, domain, config, split, config.replay.monitor_until)
    state = monitor_domain(domain, config, return_state=True)
    if not state.is_completed():
        return outcome.model_copy(update={"status": "failed", "error": f"monitoring: {state.message}"})
    monitoring = state.result()
    update: dict = {"monitoring": monitoring}
    if monitoring.retraining_event:
        retrain = retrain_domain(domain, config, reason=monitoring.retraining_event, serving_url=serving_url,
                                 return_state=True)  # fmt: skip
        if not retrain.is_completed():
            return outcome.model_copy(update={**update, "status": "failed", "error": f"retraining: {retrain.message}"})
        update["retraining"] = retrain.result()
    return outcome.model_copy(update=update)


def promote(outcome: DomainOutcome, config: PipelineConfig, serving_url: str) -> DomainOutcome:
    """The domain's outcome with its promotion's; a domain whose training failed is not promoted."""
    if outcome.status == "failed":
        return outcome
    # In a loop run the first canary sees the months before replay.monitor_until, the "present" the loop starts in.
    state = promote_challenger(outcome.domain, config, serving_url, config.replay.monitor_until, return_state=True)
    if not state.is_completed():
        return outcome.model_copy(update={"status": "failed", "error": f"promotion: {state.message}"})
    return outcome.model_copy(update={"promotion": state.result()})


def lifecycle_state(outcomes: list[DomainOutcome]):
    """Failed when a domain failed; Completed otherwise, naming the domains whose version the gates rejected."""
    failed = [o.domain for o in outcomes if o.status == "failed"]
    rejected = [f"{o.domain} ({', '.join(o.failed_checks)})" for o in outcomes if o.status == "rejected"]
    note = f"; rejected by the gates: {', '.join(rejected)}" if rejected else ""
    canaries = [f"{o.domain} v{o.promotion.version} {o.promotion.status.replace('_', ' ')}"
                for o in outcomes if o.promotion is not None and o.promotion.version]  # fmt: skip
    note += f"; canary: {', '.join(canaries)}" if canaries else ""
    looped = [f"{o.domain} {o.timeline()[-1]}" for o in outcomes if o.monitoring is not None]
    note += f"; loop: {'; '.join(looped)}" if looped else ""
    if failed:
        message = f"{len(failed)} of {len(outcomes)} domains failed: {', '.join(failed)}{note}"
        return Failed(message=message, data=outcomes)
    return Completed(message=f"{len(outcomes) - len(rejected)} of {len(outcomes)} domains passed the gates{note}",
                     data=outcomes)  # fmt: skip
