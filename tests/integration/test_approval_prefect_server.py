"""Manual approval on a real `prefect server start`: the promotion run pauses for the UI's form, and its answer decides.

The promotion flow runs in a thread of this process against the server (tests/integration/prefect_server.py),
on a registry of two versions (no model files: the controller only moves aliases and weights) and a canary of
one step that needs no traffic, so the run reaches the approval at once. The answer comes through the API
(`resume_flow_run` with the form's input, as the UI sends it) or through `domainflow approve|reject`.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from domainflow.config import PipelineConfig, build_config

from .prefect_server import prefect_server  # noqa: F401  (the fixture)

# The module's server is started once: its tests share one worker.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("prefect-approval")]

PAUSE_WAIT_S = 60


@pytest.fixture(scope="module")
def home(prefect_server, tmp_path_factory):  # noqa: F811
    """One DOMAINFLOW_HOME for the module (its MLflow database is made once); each test has a domain of its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOMAINFLOW_HOME", str(tmp_path_factory.mktemp("approval-home")))
        for name in ("MLFLOW_TRACKING_URI", "DOMAINFLOW_ARTIFACT_ROOT", "DOMAINFLOW_DATABASE_URL"):
            patch.delenv(name, raising=False)
        yield


def manual_config(domain: str, timeout_s: float = 120) -> PipelineConfig:
    """`domain` under manual approval (the others stay auto), with one canary step that needs no traffic."""
    return build_config({
        "domains": {"values": [domain]},
        "canary": {"steps": [{"weight": 1.0, "min_samples": 0}], "poll_seconds": 0.2},
        "promotion": {"domain_approval": {domain: "manual"}, "approval_timeout_seconds": timeout_s},
    })  # fmt: skip


def register_challenger(config: PipelineConfig, domain: str, tmp_path) -> MlflowClient:
    """v1 champion, v2 challenger that passed its gates, v1 serving all traffic."""
    from domainflow.registry.domain_model import DomainModel
    from domainflow.settings import resolve_settings
    from domainflow.store.rollouts import Arm, set_rollout

    settings = resolve_settings()
    name = config.registered_model_name(domain)
    client = MlflowClient(settings.tracking_uri)
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=(tmp_path / "model").as_uri())
    client.set_model_version_tag(name, "2", "domainflow.gate", "passed")
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    engine = DomainModel.open(settings, domain, name).engine
    set_rollout(engine, domain, name, [Arm("champion", "1", 1.0)], "v1 serves", "deploy")
    return client


class PromotionRun:
    """promote_challenger in a thread (it blocks while paused); `result()` joins it."""

    def __init__(self, domain: str, config: PipelineConfig):
        from domainflow.flows.promotion import promote_challenger

        self.state = None
        self.thread = threading.Thread(
            target=lambda: setattr(self, "state", promote_challenger(domain, config, return_state=True)), daemon=True
        )
        self.thread.start()

    def result(self, timeout_s: float = PAUSE_WAIT_S):
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"the promotion run did not finish within {timeout_s} s of its answer"
        return self.state.result()


def wait_for_pause(domain: str):
    from domainflow.tasks.approval import paused_promotions

    deadline = time.monotonic() + PAUSE_WAIT_S
    while time.monotonic() < deadline:
        paused = paused_promotions(domain)
        if paused:
            return paused[0]
        time.sleep(0.2)
    raise AssertionError(f"no promotion run of {domain} paused within {PAUSE_WAIT_S} s")


def aliases(client: MlflowClient, config: PipelineConfig, domain: str) -> dict[str, str]:
    model = client.get_registered_model(config.registered_model_name(domain))
    return {alias: str(version) for alias, version in model.aliases.items()}


def audit_of(domain: str, action: str):
    from domainflow.settings import resolve_settings
    from domainflow.store.audit import read_audit
    from domainflow.store.database import open_database

    return [e for e in read_audit(open_database(resolve_settings().database_url), domain) if e.action == action]


def test_an_approval_through_the_api_makes_the_paused_canary_champion(home, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    config = manual_config("EWR")
    client = register_challenger(config, "EWR", tmp_path)
    run = PromotionRun("EWR", config)
    paused = wait_for_pause("EWR")

    assert paused.name == "promote-EWR" and paused.state.state_details.pause_key == "approval-v2"
    # The form the UI shows: its fields and the description naming the version.
    keyset = paused.state.state_details.run_input_keyset
    with get_client(sync_client=True) as prefect:
        schema = prefect.read_flow_run_input(paused.id, keyset["schema"])
        description = prefect.read_flow_run_input(paused.id, keyset["description"])
    assert {"approve", "reason", "approver"} <= set(json.loads(schema)["properties"])
    assert "EWR v2" in description and "champion v1" in description
    assert aliases(client, config, "EWR") == {"champion": "1", "challenger": "2", "canary": "2"}

    resume_flow_run(paused.id, run_input={"approve": True, "reason": "slices all better", "approver": "alice"})
    summary = run.result()

    assert (summary.status, summary.approval, summary.approver) == ("promoted", "approved", "alice")
    assert aliases(client, config, "EWR") == {"champion": "2", "previous-champion": "1"}
    [entry] = audit_of("EWR", "approval")
    assert (entry.actor, entry.reason, entry.subject) == ("alice", "slices all better", "v2")
    tags = client.get_model_version(config.registered_model_name("EWR"), "2").tags
    assert (tags["domainflow.approval"], tags["domainflow.approval_by"]) == ("approved", "alice")


def test_a_rejection_from_the_cli_rolls_the_canary_back(home, tmp_path):
    from domainflow.cli import app

    config = manual_config("JFK")
    client = register_challenger(config, "JFK", tmp_path)
    run = PromotionRun("JFK", config)
    wait_for_pause("JFK")

    other = CliRunner().invoke(app, ["reject", "JFK", "--version", "3", "--reason", "no"])
    assert other.exit_code == 2 and "no promotion of JFK v3 awaits approval: it waits for v2" in other.output
    rejected = CliRunner().invoke(app, ["reject", "JFK", "--version", "2", "--reason", "wait for June",
                                        "--approver", "bob"])  # fmt: skip
    assert rejected.exit_code == 0, rejected.output
    summary = run.result()

    assert (summary.status, summary.approval, summary.approver) == ("rolled_back", "rejected", "bob")
    assert summary.reason == "rejected by bob: wait for June"
    assert aliases(client, config, "JFK") == {"champion": "1"}
    [entry] = audit_of("JFK", "rejection")
    assert (entry.actor, entry.reason) == ("bob", "wait for June")
    tags = client.get_model_version(config.registered_model_name("JFK"), "2").tags
    assert (tags["domainflow.approval"], tags["domainflow.rollout"]) == ("rejected", "rolled_back")
    # Answered: nothing waits any more.
    late = CliRunner().invoke(app, ["approve", "JFK", "--version", "2", "--reason", "changed my mind"])
    assert late.exit_code == 2 and "no promotion run of it is paused" in late.output


def test_no_answer_in_time_rolls_the_canary_back(home, tmp_path):
    from domainflow.flows.promotion import promote_challenger

    config = manual_config("LGA", timeout_s=2)
    client = register_challenger(config, "LGA", tmp_path)

    summary = promote_challenger("LGA", config)

    assert (summary.status, summary.approval) == ("rolled_back", "timed_out")
    assert summary.reason.startswith("rolled back: no approval within 2 s")
    assert aliases(client, config, "LGA") == {"champion": "1"}
    [entry] = audit_of("LGA", "approval_timeout")
    assert entry.actor.startswith("prefect-flow-run/")
