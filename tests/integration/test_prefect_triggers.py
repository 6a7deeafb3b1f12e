"""prefect.yaml's event triggers on a real Prefect server: a domainflow event starts the deployment it names.

Needs no PostgreSQL: it starts a local `prefect server start` (SQLite, tests/integration/prefect_server.py)
and skips with the reason when that cannot start. No worker runs: a triggered run only has to be created.
The deployments are registered by `prefect deploy --all` from the repository root, as a user would.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from domainflow.config import PipelineConfig
from domainflow.monitoring.events import (
    CHALLENGER_SET,
    DRIFT_DETECTED,
    FORECAST_BREACH,
    QUALITY_DEGRADED,
    domain_resource,
)

from .prefect_server import (
    client_env,
    prefect_command,
    prefect_server,  # noqa: F401  (the fixture)
)

# One worker for the module: its server and `prefect deploy --all` (about 40 s) are set up once, not per worker.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("prefect-server")]

ROOT = Path(__file__).resolve().parents[2]
WORK_POOL = "domainflow"
RUN_WAIT_S = 60


@pytest.fixture(scope="module")
def deployments(prefect_server, tmp_path_factory) -> dict[str, object]:  # noqa: F811
    """`prefect deploy --all` of the real prefect.yaml into the `domainflow` process pool: {name: deployment}."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(
            name=WORK_POOL, type="process", base_job_template=ProcessWorker.get_default_base_job_template()
        ))  # fmt: skip

    work = tmp_path_factory.mktemp("deploy")
    env = {**client_env(prefect_server, work / "prefect-home"),
           "DOMAINFLOW_PROJECT_DIR": str(ROOT), "DOMAINFLOW_HOME": str(work / "domainflow-home")}  # fmt: skip
    before = (ROOT / "prefect.yaml").read_bytes()
    log = work / "deploy.log"
    with open(log, "wb") as output:
        deploying = subprocess.Popen([*prefect_command(), "--no-prompt", "deploy", "--all"], cwd=ROOT, env=env,
                                     stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
    # On two cores the watch test's imports (MLflow, the flows: ~10 s) fit in while `prefect deploy` runs.
    import domainflow.flows.registry_watch  # noqa: F401

    assert deploying.wait(timeout=300) == 0, f"prefect deploy --all failed:\n{log.read_text()[-4000:]}"
    assert (ROOT / "prefect.yaml").read_bytes() == before, "prefect deploy must not rewrite prefect.yaml"

    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    with get_client(sync_client=True) as client:
        registered = {d.name: d for d in client.read_deployments()}
    assert set(registered) == {d["name"] for d in declared}
    return registered


def emit(event: str, domain: str) -> None:
    """The event as domainflow emits it: about one domain of the configured pipeline."""
    from prefect.events import emit_event

    emit_event(event=event, resource=domain_resource(PipelineConfig().name, domain), payload={"statistic": 0.42})


def wait_for_runs(deployment, count: int = 1, domain: str | None = None, timeout_s: float = RUN_WAIT_S) -> list:
    """The deployment's runs (for `domain` if given) once there are `count` of them, or what exists at the timeout."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            )
            runs = [run for run in runs if domain is None or run.parameters.get("domain") == domain]
            if len(runs) >= count or time.monotonic() > deadline:
                return runs
            time.sleep(0.5)


def flow_name(deployment) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow(deployment.flow_id).name


def test_monitoring_events_start_a_retraining_run_for_each_domain(deployments):
    retrain = deployments["retrain"]
    assert flow_name(retrain) == "retrain-domain"
    assert wait_for_runs(retrain, timeout_s=0) == []

    # One monitoring run may report several domains at once; each gets its own run.
    sent = {"JFK": DRIFT_DETECTED, "LGA": QUALITY_DEGRADED, "EWR": FORECAST_BREACH}
    for domain, event in sent.items():
        emit(event, domain)

    runs = wait_for_runs(retrain, count=len(sent))
    assert {run.parameters["domain"]: run.parameters["reason"] for run in runs} == sent, (
        f"expected one retrain run per event within {RUN_WAIT_S} s"
    )
    assert {run.work_pool_name for run in runs} == {WORK_POOL}
    # Each run knows the event that started it, for the audit (Prefect could not render `{{ event.id }}`
    # alone: its JSON encoder has no UUIDs, and the automation failed without a run).
    assert all(uuid.UUID(run.parameters["event_id"]) for run in runs)


def test_challenger_set_event_starts_a_promotion_for_its_domain(deployments):
    promote = deployments["promote"]
    assert flow_name(promote) == "promote-challenger"

    emit(CHALLENGER_SET, "EWR")

    runs = wait_for_runs(promote, domain="EWR")
    assert len(runs) == 1, f"no promote run for EWR within {RUN_WAIT_S} s of {CHALLENGER_SET}"
    # The retraining trigger does not expect the promotion event.
    assert wait_for_runs(deployments["retrain"], domain="EWR", count=2, timeout_s=2)[1:] == []


def test_a_challenger_set_by_hand_in_mlflow_starts_its_promotion(deployments, tmp_path, monkeypatch):
    """The registry watch, run here against the server, announces the alias; the trigger starts `promote`."""
    from mlflow import MlflowClient

    from domainflow.config import build_config
    from domainflow.flows.registry_watch import watch_registry
    from domainflow.settings import resolve_settings

    monkeypatch.setenv("DOMAINFLOW_HOME", str(tmp_path / "home"))
    for name in ("MLFLOW_TRACKING_URI", "DOMAINFLOW_ARTIFACT_ROOT", "DOMAINFLOW_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    config = build_config({"domains": {"values": ["LGA"]}})
    model = config.registered_model_name("LGA")
    registry = MlflowClient(resolve_settings().tracking_uri)
    registry.create_registered_model(model)
    for _ in range(2):
        registry.create_model_version(model, source=(tmp_path / "model").as_uri())
    registry.set_registered_model_alias(model, "champion", "1")
    registry.set_registered_model_alias(model, "challenger", "2")

    assert watch_registry(config) == ["LGA v2"]

    runs = wait_for_runs(deployments["promote"], domain="LGA")
    assert len(runs) == 1, f"no promote run for LGA within {RUN_WAIT_S} s of the watch's announcement"
    # Announced once: a second watch finds nothing new and starts nothing.
    assert watch_registry(config) == []
    assert len(wait_for_runs(deployments["promote"], domain="LGA", count=2, timeout_s=3)) == 1


def test_an_sla_breach_reaches_the_alert_webhook_through_the_automation(prefect_server):  # noqa: F811
    """Issue 18: monitoring's alert events go out through a Prefect automation to a webhook (here on loopback)."""
    import json
    import queue
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prefect.automations import Automation
    from prefect.events import emit_event

    from domainflow.flows.alerts import AUTOMATION_NAME, install_alerts
    from domainflow.monitoring.events import SLA_BREACHED

    received: queue.Queue = queue.Queue()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            received.put(json.loads(self.rfile.read(int(self.headers.get("content-length", 0)))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/alerts"
        install_alerts(url)
        automation = install_alerts(url)  # installed twice: replaced, not doubled
        assert Automation.read(name=AUTOMATION_NAME).id == automation.id
        payload = {"failed_checks": ["p95_latency_ms"], "health": 61.5}
        deadline, message = time.monotonic() + RUN_WAIT_S, None
        while message is None and time.monotonic() < deadline:
            # The server's triggers pick up a new automation within seconds: the alert is sent until it is seen.
            emit_event(event=SLA_BREACHED, resource=domain_resource(PipelineConfig().name, "JFK"), payload=payload)
            try:
                message = received.get(timeout=5)
            except queue.Empty:
                continue
    finally:
        receiver.shutdown()
    assert message is not None, "no alert reached the webhook"
    assert message["subject"] == f"domainflow: {SLA_BREACHED} for JFK"
    assert "p95_latency_ms" in message["body"] and "61.5" in message["body"]
