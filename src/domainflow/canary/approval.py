"""A person's answer to a canary that passed its last step under `promotion.approval: manual`.

The controller stops such a promotion before the champion alias moves (its state `awaiting_approval`,
with a deadline); the answer, from the Prefect UI's form or `domainflow approve|reject`, or none by the
deadline, decides here whether it is promoted or rolled back. Pure: the controller applies the outcome.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from domainflow.store.promotions import PROMOTED, ROLLED_BACK

APPROVED, REJECTED, TIMED_OUT = "approved", "rejected", "timed_out"
# The audit log's action, and the promotion's decision, for each outcome.
ACTIONS = {APPROVED: "approval", REJECTED: "rejection", TIMED_OUT: "approval_timeout"}


@dataclass(frozen=True)
class ApprovalAnswer:
    """What a person answered: approve or reject, who they are, and why."""

    approve: bool
    approver: str
    reason: str


@dataclass(frozen=True)
class ApprovalOutcome:
    outcome: Literal["approved", "rejected", "timed_out"]
    status: str  # the promotion's final status: promoted or rolled_back
    by: str  # the approver, or the flow run that waited in vain
    reason: str  # the approver's reason, or how long the wait was

    @property
    def action(self) -> str:
        return ACTIONS[self.outcome]

    @property
    def summary(self) -> str:
        """One line for the promotion's reason, its report and the alias moves it makes."""
        if self.outcome == TIMED_OUT:
            return f"rolled back: {self.reason}"
        return f"{self.outcome} by {self.by}: {self.reason}"

    def as_record(self) -> dict[str, Any]:
        return {"action": self.action, "outcome": self.outcome, "by": self.by, "reason": self.reason}


def judge_approval(answer: ApprovalAnswer | None, approval: dict[str, Any], waiter: str) -> ApprovalOutcome:
    """The outcome of a promotion's approval record (requested_at, deadline) given `answer`.

    No answer means the wait ended at the deadline: the canary is rolled back, by `waiter` (the flow run).
    An answer names its approver and reason; blank ones are named as such, not left empty in the audit.
    """
    if answer is None:
        waited = approval["deadline"] - approval["requested_at"]
        deadline = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(approval["deadline"]))
        reason = f"no approval within {waited:g} s (by {deadline})"
        return ApprovalOutcome(outcome=TIMED_OUT, status=ROLLED_BACK, by=waiter, reason=reason)
    approver = answer.approver.strip() or "an unnamed approver"
    reason = answer.reason.strip() or "no reason given"
    if answer.approve:
        return ApprovalOutcome(outcome=APPROVED, status=PROMOTED, by=approver, reason=reason)
    return ApprovalOutcome(outcome=REJECTED, status=ROLLED_BACK, by=approver, reason=reason)


def approval_wait_seconds(approval: dict[str, Any], now: float) -> float:
    """How much longer a promotion waits for its answer (0: its deadline has passed)."""
    return max(0.0, float(approval["deadline"]) - now)
