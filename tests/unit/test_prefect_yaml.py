"""prefect.yaml without a server: every deployment loads, takes its parameters, and listens for events domainflow emits.

tests/integration/test_prefect_triggers.py registers the same file with a real server and fires the triggers.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from domainflow.config import PipelineConfig
from domainflow.monitoring.events import ALERT_EVENTS, CHALLENGER_SET, EVENTS, RETRAINING_EVENTS, domain_resource

ROOT = Path(__file__).resolve().parents[2]
WORK_POOL = "domainflow"


def declared_deployments() -> list[dict]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


DEPLOYMENTS = declared_deployments()
TRIGGERED = [d for d in DEPLOYMENTS if d.get("triggers")]


def by_name(deployment: dict) -> str:
    return deployment["name"]


@pytest.fixture(scope="module")
def flows() -> dict:
    """{deployment name: the flow its entrypoint names}, loaded as `prefect deploy` loads them."""
    from prefect.flows import load_flow_from_entrypoint

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        return {d["name"]: load_flow_from_entrypoint(d["entrypoint"]) for d in DEPLOYMENTS}


def domainflow_event(event: str, domain: str):
    """An event shaped as domainflow emits it (resource labels name the domain and pipeline)."""
    from prefect.events import Event

    return Event(event=event, resource=domain_resource(PipelineConfig().name, domain), payload={"statistic": 0.4})


def rendered_trigger_parameters(trigger: dict, event) -> dict:
    """The parameters the server's run-deployment action would pass for `event` (same sandboxed Jinja)."""
    from prefect.server.utilities.user_templates import render_user_template_sync

    return {name: render_user_template_sync(value, {"event": event}) if isinstance(value, str) else value
            for name, value in (trigger.get("parameters") or {}).items()}  # fmt: skip


def test_deployment_names_are_unique():
    names = [d["name"] for d in DEPLOYMENTS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=by_name)
def test_deployment_parameters_validate_against_its_flow(deployment, flows):
    flow = flows[deployment["name"]]
    parameters = deployment.get("parameters") or {}

    validated = flow.validate_parameters(parameters)

    assert isinstance(validated.get("config", PipelineConfig()), PipelineConfig)
    # A scheduled run, or a quick run from the UI, passes only these.
    missing = set(flow.parameters.required or []) - set(parameters)
    assert missing == set(), f"{deployment['name']} needs a default for {missing} in prefect.yaml"


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=by_name)
def test_flow_parameter_schema_offers_the_config_form_with_its_defaults(deployment, flows):
    schema = flows[deployment["name"]].parameters.model_dump()

    config = schema["properties"]["config"]

    assert config["$ref"] == "#/definitions/PipelineConfig"
    assert config["default"] == PipelineConfig().model_dump(mode="json")
    assert {"TrainingConfig", "CanaryConfig", "MonitoringConfig"} <= set(schema["definitions"])


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=by_name)
def test_deployment_runs_on_the_domainflow_pool_with_a_home(deployment):
    assert deployment["work_pool"]["name"] == WORK_POOL
    assert deployment["work_pool"]["job_variables"]["env"]["DOMAINFLOW_HOME"] == "{{ $DOMAINFLOW_HOME }}"


@pytest.mark.parametrize("deployment", [d for d in DEPLOYMENTS if d.get("schedules")], ids=by_name)
def test_schedules_parse(deployment):
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    for spec in deployment["schedules"]:
        if "cron" in spec:
            CronSchedule(cron=spec["cron"], timezone=spec.get("timezone"))
        else:
            IntervalSchedule(interval=timedelta(seconds=spec["interval"]))


@pytest.mark.parametrize("deployment", TRIGGERED, ids=by_name)
def test_triggers_expect_only_events_domainflow_emits(deployment):
    for trigger in deployment["triggers"]:
        assert trigger["type"] == "event"
        assert set(trigger["expect"]) <= set(EVENTS)
        assert trigger["match"] == {"prefect.resource.id": "domainflow.domain.*"}


def test_each_event_domainflow_emits_starts_one_deployment():
    listeners = {
        event: [d["name"] for d in TRIGGERED for t in d["triggers"] if event in t["expect"]] for event in EVENTS
    }

    # The alerts start no deployment: a notification automation listens to them (flows/alerts.py).
    assert listeners == {**{event: ["retrain"] for event in RETRAINING_EVENTS}, CHALLENGER_SET: ["promote"],
                         **{event: [] for event in ALERT_EVENTS}}  # fmt: skip


@pytest.mark.parametrize("deployment", TRIGGERED, ids=by_name)
def test_trigger_parameters_render_to_valid_flow_parameters(deployment, flows):
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    flow = flows[deployment["name"]]
    for trigger in deployment["triggers"]:
        DeploymentEventTrigger.model_validate({k: v for k, v in trigger.items() if k != "type"})
        assert set(trigger["parameters"]) <= set(flow.parameters.properties)
        for event in trigger["expect"]:
            rendered = rendered_trigger_parameters(trigger, domainflow_event(event, "JFK"))
            assert rendered["domain"] == "JFK"
            flow.validate_parameters({**(deployment.get("parameters") or {}), **rendered})


def test_a_retrain_started_by_an_event_gets_its_name_and_id_for_the_audit_log():
    [trigger] = next(d for d in DEPLOYMENTS if d["name"] == "retrain")["triggers"]
    for name in RETRAINING_EVENTS:
        event = domainflow_event(name, "LGA")
        rendered = rendered_trigger_parameters(trigger, event)
        assert (rendered["reason"], rendered["event_id"]) == (name, str(event.id))


@pytest.mark.parametrize("deployment", TRIGGERED, ids=by_name)
def test_triggered_deployments_queue_runs_one_at_a_time(deployment):
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    limit = ConcurrencyLimitConfig.model_validate(deployment["concurrency_limit"])

    assert (limit.limit, limit.collision_strategy.value) == (1, "ENQUEUE")


def served_shape(deployment) -> dict:
    """What a served deployment shares with prefect.yaml's, from a RunnerDeployment."""
    schedules = []
    for schedule in deployment.schedules or []:
        inner = schedule.schedule
        if hasattr(inner, "cron"):
            schedules.append({"cron": inner.cron, "timezone": inner.timezone, "active": schedule.active})
        else:
            schedules.append({"interval": int(inner.interval.total_seconds()), "active": schedule.active})
    triggers = [{"type": "event", "enabled": t.enabled, "match": t.match.model_dump(), "expect": sorted(t.expect),
                 "parameters": t.parameters} for t in deployment.triggers]  # fmt: skip
    limit = deployment.concurrency_options
    return {
        "flow": deployment.flow_name,
        "tags": sorted(deployment.tags),
        "schedules": schedules,
        "triggers": triggers,
        "concurrency_limit": deployment.concurrency_limit,
        "collision_strategy": limit.collision_strategy.value if limit else None,
        "domain": deployment.parameters.get("domain"),
    }


def declared_shape(deployment: dict, flow) -> dict:
    limit = deployment.get("concurrency_limit") or {}
    return {
        "flow": flow.name,
        "tags": sorted(deployment["tags"]),
        "schedules": deployment.get("schedules") or [],
        "triggers": [{**t, "expect": sorted(t["expect"])} for t in deployment.get("triggers") or []],
        "concurrency_limit": limit.get("limit"),
        "collision_strategy": limit.get("collision_strategy"),
        "domain": (deployment.get("parameters") or {}).get("domain"),
    }


def test_served_deployments_mirror_prefect_yaml(flows):
    from prefect.flows import load_flow_from_entrypoint

    from domainflow.flows.deployments import build_deployments

    config = PipelineConfig.model_validate({"training": {"max_epochs": 1}})

    served = {d.name: d for d in build_deployments(config)}

    assert list(served) == [d["name"] for d in DEPLOYMENTS]
    for declared in DEPLOYMENTS:
        name = declared["name"]
        assert served_shape(served[name]) == declared_shape(declared, flows[name]), name
        assert served[name].parameters["config"] == config.model_dump(mode="json")
        flows[name].validate_parameters(served[name].parameters)
        # A module path, so `domainflow serve-flows` works from any directory.
        assert load_flow_from_entrypoint(served[name].entrypoint).name == flows[name].name


def test_installing_the_alerts_needs_a_webhook_url_and_a_server(monkeypatch):
    from typer.testing import CliRunner

    from domainflow.cli import app

    monkeypatch.delenv("DOMAINFLOW_ALERT_WEBHOOK_URL", raising=False)
    missing = CliRunner().invoke(app, ["install-alerts"])
    assert missing.exit_code == 2 and "set DOMAINFLOW_ALERT_WEBHOOK_URL" in missing.output
    monkeypatch.setenv("DOMAINFLOW_ALERT_WEBHOOK_URL", "https://hooks.example.com/T0/B0/secret")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    no_server = CliRunner().invoke(app, ["install-alerts"])
    assert no_server.exit_code == 2 and "prefect server start" in no_server.output
