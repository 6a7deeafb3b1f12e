"""Approval of a promotion in Prefect: the form a paused promotion run shows, the wait for it, and its answer.

A canary under `promotion.approval: manual` stops after its last step (the controller's `awaiting_approval`);
the promotion flow then pauses with Prefect's wait-for-input, so the Prefect UI shows ApprovalInput's form on
the run. `domainflow approve|reject` fill the same form through the API (`answer_paused_promotion`).
"""

from __future__ import annotations

import math
import time

from prefect import get_client, task
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import FlowPauseTimeout, NotPausedError
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Running

from domainflow.canary import controller
from domainflow.canary.approval import ApprovalAnswer, approval_wait_seconds
from domainflow.config import PipelineConfig
from domainflow.registry.domain_model import DomainModel
from domainflow.settings import Settings
from domainflow.store.promotions import PromotionState

from .policies import RETRY_IO, flow_run_actor

# The promotion flow's name (flows/promotion.py), by which the CLI finds its paused runs.
PROMOTION_FLOW = "promote-challenger"


class ApprovalInput(RunInput):
    """The form on a paused promotion run: approve the canary (it becomes champion) or reject it (rolled back)."""

    approve: bool
    reason: str
    approver: str = ""


class NoPausedPromotion(LookupError):
    """No promotion run of the domain and version waits for approval; the message says what does."""


def approval_key(version: str) -> str:
    """The pause's key, which names the version it waits on (Prefect allows lowercase letters, digits and dashes)."""
    return f"approval-v{version}"


def await_approval(state: PromotionState, poll_seconds: float) -> ApprovalAnswer | None:
    """Pause the flow run until someone answers its form, or until the promotion's deadline (None).

    A timed-out pause leaves the run Paused; it is set running again, so that the rollback's tasks may run.
    """
    remaining = approval_wait_seconds(state.approval, time.time())
    logger = get_run_logger()
    if remaining <= 0:
        return None
    deadline = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(state.approval["deadline"]))
    description = (
        f"**{state.domain} v{state.version}** passed every canary step against champion v{state.champion_version} "
        f"and now serves its traffic. Approve to make it champion; reject to roll it back. Without an answer by "
        f"{deadline} it is rolled back. Give your name and a reason: both go to the audit log and the version's tags."
    )
    logger.info("domain=%s v%s awaits approval until %s", state.domain, state.version, deadline)
    try:
        given = pause_flow_run(wait_for_input=ApprovalInput.with_initial_data(description=description),
                               timeout=math.ceil(remaining), poll_interval=poll_seconds,
                               key=approval_key(state.version))  # fmt: skip
    except FlowPauseTimeout:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run.id, Running(message="approval timed out: rolling back"), force=True)
        return None
    return ApprovalAnswer(approve=given.approve, approver=given.approver, reason=given.reason)


@task(**RETRY_IO)
def settle_approval(
    settings: Settings, domain: str, config: PipelineConfig, version: str, answer: ApprovalAnswer | None
) -> PromotionState:
    """Promote on approval; roll back on rejection or when no answer came in time."""
    model = DomainModel.open(settings, domain, config.registered_model_name(domain))
    state = controller.settle_approval(model, version, answer, flow_run_actor())
    get_run_logger().info("domain=%s v%s %s: %s", domain, version, state.status, state.reason)
    return state


def answer_paused_promotion(domain: str, version: str, answer: ApprovalAnswer) -> FlowRun:
    """Resume the promotion run of `domain` paused for `version`'s approval with `answer`, as the UI's form does.

    NoPausedPromotion when none waits (none of the domain, or only for another version).
    """
    paused = paused_promotions(domain)
    wanted = [run for run in paused if run.state.state_details.pause_key == approval_key(version)]
    if not wanted:
        waiting = sorted(run.state.state_details.pause_key.removeprefix("approval-") for run in paused)
        found = f"it waits for {', '.join(waiting)}" if waiting else "no promotion run of it is paused"
        raise NoPausedPromotion(f"no promotion of {domain} v{version} awaits approval: {found}")
    run = wanted[0]
    given = {"approve": answer.approve, "reason": answer.reason, "approver": answer.approver}
    try:
        resume_flow_run(run.id, run_input=given)
    except FlowPauseTimeout:
        raise NoPausedPromotion(f"the promotion of {domain} v{version} waited too long: it is rolled back") from None
    except NotPausedError:
        raise NoPausedPromotion(f"the promotion of {domain} v{version} was answered meanwhile") from None
    return run


def paused_promotions(domain: str) -> list[FlowRun]:
    """The domain's promotion runs that are paused (by the flow's name and its `domain` parameter)."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[PROMOTION_FLOW])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
            ),
        )
    return [run for run in runs if run.parameters.get("domain") == domain and run.state is not None]
