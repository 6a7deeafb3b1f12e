"""run_lifecycle: every configured domain through train_domain_model; the flow behind `domainflow run`."""

from __future__ import annotations

from prefect import flow
from prefect.states import Completed, Failed

from domainflow.config import PipelineConfig
from domainflow.flows.training import train_domain_model
from domainflow.summary import DomainOutcome
from domainflow.tasks.data import choose_domains, fingerprint_data_source, load_dataset


@flow(name="domain-lifecycle", log_prints=True)
def run_lifecycle(config: PipelineConfig = PipelineConfig()):
    """One failing domain does not stop the others; the run fails at the end, naming it.

    A version the gates reject is an outcome, not a failure: the run completes and its message names it.
    """
    fingerprint = fingerprint_data_source(config.data.source)
    frame = load_dataset(config.data.source, fingerprint, config.source_columns())
    domains = choose_domains(frame, config.domains)
    outcomes: list[DomainOutcome] = []
    for domain in domains:
        state = train_domain_model(domain, config, return_state=True)
        outcomes.append(
            state.result() if state.is_completed() else DomainOutcome.failed(domain, state.message or "failed")
        )
    return lifecycle_state(outcomes)


def lifecycle_state(outcomes: list[DomainOutcome]):
    """Failed when a domain failed; Completed otherwise, naming the domains whose version the gates rejected."""
    failed = [o.domain for o in outcomes if o.status == "failed"]
    rejected = [f"{o.domain} ({', '.join(o.failed_checks)})" for o in outcomes if o.status == "rejected"]
    note = f"; rejected by the gates: {', '.join(rejected)}" if rejected else ""
    if failed:
        message = f"{len(failed)} of {len(outcomes)} domains failed: {', '.join(failed)}{note}"
        return Failed(message=message, data=outcomes)
    return Completed(message=f"{len(outcomes) - len(rejected)} of {len(outcomes)} domains passed the gates{note}",
                     data=outcomes)  # fmt: skip
