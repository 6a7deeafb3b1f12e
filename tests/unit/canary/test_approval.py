"""Manual approval (promotion.approval: manual): the answer judged, and the controller stopping for it and ending by it.

The controller runs on a real SQLite state database and MLflow registry; its canary has two steps that need
no traffic, so it reaches the approval at once.
"""

from __future__ import annotations

import itertools

import pytest
from mlflow import MlflowClient

from domainflow.canary.approval import ApprovalAnswer, approval_wait_seconds, judge_approval
from domainflow.canary.controller import Clock, abort_promotion, run_promotion, settle_approval
from domainflow.canary.report import summarize_promotion
from domainflow.config import CanaryConfig, RolloutStep, build_config
from domainflow.registry.aliases import CANARY, PREVIOUS_CHAMPION
from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import CHALLENGER, CHAMPION, TAG, current_alias_version
from domainflow.settings import Settings
from domainflow.store.audit import read_audit
from domainflow.store.database import open_database
from domainflow.store.promotions import ABORTED, PROMOTED, ROLLED_BACK, RUNNING, PromotionConflict, read_promotion
from domainflow.store.rollouts import Arm, read_rollout, set_rollout

DOMAIN = "EWR"
PLAN = CanaryConfig(steps=[RolloutStep(weight=0.5, min_samples=0), RolloutStep(weight=1.0, min_samples=0)])
REQUESTED = {"requested_at": 1_000.0, "deadline": 1_060.0}


WHY = "AUC up on every slice"
TIMED_OUT = "no approval within 60 s (by 1970-01-01 00:17:40 UTC)"
ACTIONS = {"approved": "approval", "rejected": "rejection", "timed_out": "approval_timeout"}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (ApprovalAnswer(True, "alice", WHY), ("approved", PROMOTED, "alice", WHY)),
        (ApprovalAnswer(False, "bob", "wait for June"), ("rejected", ROLLED_BACK, "bob", "wait for June")),
        (ApprovalAnswer(True, "  ", " "), ("approved", PROMOTED, "an unnamed approver", "no reason given")),
        (None, ("timed_out", ROLLED_BACK, "prefect-flow-run/1", TIMED_OUT)),
    ],
    ids=["approved", "rejected", "blank", "timed out"],
)
def test_an_answer_decides_promotion_or_rollback_and_names_who_and_why(answer, expected):
    outcome = judge_approval(answer, REQUESTED, waiter="prefect-flow-run/1")
    assert (outcome.outcome, outcome.status, outcome.by, outcome.reason) == expected
    assert outcome.action == ACTIONS[outcome.outcome]


def test_the_wait_is_what_is_left_of_the_timeout():
    assert approval_wait_seconds(REQUESTED, now=1_015.0) == 45.0
    assert approval_wait_seconds(REQUESTED, now=1_090.0) == 0.0


_models = itertools.count()


@pytest.fixture
def waiting(mlflow_store, tmp_path):
    """A domain whose canary of v2 (against champion v1) passed its last step and awaits approval; v3 waits."""
    tracking_uri, _ = mlflow_store
    name = f"approval{next(_models)}-{DOMAIN}"
    client = MlflowClient(tracking_uri)
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, source=(tmp_path / "model").as_uri())
    client.set_registered_model_alias(name, CHAMPION, "1")
    client.set_registered_model_alias(name, CHALLENGER, "2")
    model = DomainModel(domain=DOMAIN, name=name, tracking_uri=tracking_uri,
                        engine=open_database(f"sqlite:///{tmp_path}/state.db"))  # fmt: skip
    set_rollout(model.engine, DOMAIN, name, [Arm("champion", "1", 1.0)], "v1 serves", "deploy")
    state = run_promotion(model, "2", PLAN, actor="controller", clock=Clock(now=lambda: 5_000.0),
                          holder="controller", approval_seconds=3_600)  # fmt: skip
    return model, state


def _aliases(model: DomainModel) -> dict[str, str | None]:
    return {alias: current_alias_version(model.client, model.name, alias)
            for alias in (CHAMPION, CHALLENGER, CANARY, PREVIOUS_CHAMPION)}  # fmt: skip


def test_a_canary_past_its_last_step_waits_serving_until_answered(waiting):
    model, state = waiting
    assert state.awaiting_approval and state.status == RUNNING and not state.settled
    assert state.approval == {"requested_at": 5_000.0, "deadline": 8_600.0}
    assert [d["action"] for d in state.decisions] == ["advance", "advance"]
    assert _aliases(model) == {CHAMPION: "1", CHALLENGER: "2", CANARY: "2", PREVIOUS_CHAMPION: None}
    assert read_rollout(model.engine, DOMAIN).arms == (Arm("champion", "1", 0.0), Arm("canary", "2", 1.0))

    # A resumed controller (another process) only waits; another version may not start meanwhile.
    again = run_promotion(model, "2", PLAN, actor="other", holder="other", approval_seconds=3_600)
    assert again.awaiting_approval and again.decisions == state.decisions
    with pytest.raises(PromotionConflict, match=r"v2 awaits approval until .*domainflow approve\|reject EWR"):
        run_promotion(model, "3", PLAN, actor="other", holder="other")


def test_status_shows_the_canary_awaiting_approval_until_its_deadline(waiting, tmp_path, capsys):
    from domainflow import cli

    cli._print_rollouts(Settings(home=tmp_path, tracking_uri="unused", artifact_root="unused",
                                 database_url=f"sqlite:///{tmp_path}/state.db"))  # fmt: skip
    shown = " ".join(capsys.readouterr().out.split())  # the table wraps its cells to the terminal's width
    assert "v2 awaiting approval until 1970-01-01 02:23 UTC (domainflow approve|reject)" in shown


def test_an_approval_makes_the_canary_champion_and_records_who_and_why(waiting):
    model, _ = waiting
    state = settle_approval(model, "2", ApprovalAnswer(True, "alice", WHY), "prefect-flow-run/1")

    assert (state.status, state.settled) == (PROMOTED, True)
    assert state.reason == f"approved by alice: {WHY}"
    assert _aliases(model) == {CHAMPION: "2", CHALLENGER: None, CANARY: None, PREVIOUS_CHAMPION: "1"}
    assert read_rollout(model.engine, DOMAIN).arms == (Arm("champion", "2", 1.0),)
    [entry] = [e for e in read_audit(model.engine, DOMAIN) if e.action == "approval"]
    assert (entry.actor, entry.subject, entry.after, entry.reason) == (
        "alice",
        "v2",
        "approved",
        "AUC up on every slice",
    )
    tags = model.client.get_model_version(model.name, "2").tags
    assert (tags[f"{TAG}approval"], tags[f"{TAG}approval_by"]) == ("approved", "alice")
    assert tags[f"{TAG}approval_reason"] == WHY and tags[f"{TAG}rollout"] == "promoted"
    summary = summarize_promotion(DOMAIN, build_config(), state)
    assert (summary.status, summary.approval, summary.approver) == ("promoted", "approved", "alice")
    assert "approval approved by alice" in summary.to_markdown() and summary.reason == state.reason

    # Answered twice (a retried task): nothing moves or is recorded again.
    assert settle_approval(model, "2", None, "prefect-flow-run/1") == read_promotion(model.engine, DOMAIN)
    assert len([e for e in read_audit(model.engine, DOMAIN) if e.action.startswith("approval")]) == 1


@pytest.mark.parametrize(
    ("answer", "action", "actor", "reason"),
    [
        (ApprovalAnswer(False, "bob", "wait for the holiday data"), "rejection", "bob", "wait for the holiday data"),
        (None, "approval_timeout", "prefect-flow-run/1", "no approval within 3600 s"),
    ],
    ids=["rejected", "timed out"],
)
def test_a_rejection_or_no_answer_rolls_the_canary_back(waiting, answer, action, actor, reason):
    model, _ = waiting
    state = settle_approval(model, "2", answer, "prefect-flow-run/1")

    assert (state.status, state.settled) == (ROLLED_BACK, True)
    assert _aliases(model) == {CHAMPION: "1", CHALLENGER: None, CANARY: None, PREVIOUS_CHAMPION: None}
    assert read_rollout(model.engine, DOMAIN).arms == (Arm("champion", "1", 1.0),)
    [entry] = [e for e in read_audit(model.engine, DOMAIN) if e.action == action]
    assert entry.actor == actor and entry.reason.startswith(reason)
    tags = model.client.get_model_version(model.name, "2").tags
    assert tags[f"{TAG}rollout"] == "rolled_back" and tags[f"{TAG}approval_by"] == actor
    summary = summarize_promotion(DOMAIN, build_config(), state)
    assert summary.status == "rolled_back" and summary.approval == state.approval["outcome"]
    assert reason in summary.reason


def test_an_answer_after_an_operator_ended_the_canary_changes_nothing(waiting):
    model, _ = waiting
    aborted = abort_promotion(model, actor="operator", reason="incident")

    state = settle_approval(model, "2", ApprovalAnswer(True, "alice", "late"), "prefect-flow-run/1")

    assert state == aborted and state.status == ABORTED
    assert _aliases(model)[CHAMPION] == "1"
    assert not [e for e in read_audit(model.engine, DOMAIN) if e.action == "approval"]
