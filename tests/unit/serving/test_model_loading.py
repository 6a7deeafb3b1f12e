"""Which models serve: a tampered version is refused, a missing champion is not ready, a failing model is logged."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pytest
from mlflow import MlflowClient

from domainflow.registry.integrity import register_model_version
from domainflow.registry.mlflow_registry import CHAMPION, LoggedRun, fluent_tracking_uri
from domainflow.serving.routing import route
from domainflow.store.rollouts import Arm

# A registered model that fails: it raises on carrier BOOM and returns NaN for carrier NAN.
FAILING_MODEL = """
import mlflow
import numpy as np


class FailingModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["carrier"] == "BOOM").any():
            raise RuntimeError("the model broke")
        return np.where(model_input["carrier"] == "NAN", np.nan, 0.5)


mlflow.models.set_model(FailingModel())
"""


@pytest.fixture
def server(kit, registry, tmp_path):
    """A fresh server per test: nothing loaded before the test changes the registry."""
    with kit.serve(kit.config(), registry, tmp_path) as running:
        yield running


def model_files(registry, version_index: int) -> list[Path]:
    model_id = registry.logged[version_index].model_uri.removeprefix("models:/")
    root = Path(urlparse(registry.artifact_root).path)
    return sorted(p for p in root.rglob("*") if p.is_file() and model_id in p.parts)


def test_a_tampered_version_is_refused_and_the_champion_keeps_serving(server, kit, registry):
    weights = next(p for p in model_files(registry, 1) if p.suffix == ".pt")
    weights.write_bytes(weights.read_bytes() + b"tampered")  # v2's files, after registration

    arms = [Arm("champion", "1", 0.5), Arm("canary", "2", 0.5)]
    view = kit.serve_arms(server, arms)
    canary = view["arms"][1]
    assert canary["loaded"] is False and "does not match" in canary["problem"]
    assert view["ready"] is True and view["fallback"] == "champion@v1"
    assert server.client.get("/ready").status_code == 200

    request_ids = [f"tamper-{i}" for i in range(60)]
    features = kit.features(registry.sample, 1)[0]
    response = server.client.post(
        "/predict", json={"domain": "EWR", "records": [{"request_id": r, "features": features} for r in request_ids]}
    )
    assert response.status_code == 200
    assert any(route(r, arms).variant == "canary" for r in request_ids)  # the canary's share went to the champion
    assert {(p["variant"], p["model_version"]) for p in response.json()["predictions"]} == {("champion", "1")}
    assert {(row["variant"], row["model_version"]) for row in kit.logged(server, request_ids).values()} == {
        ("champion", "1")
    }
    metrics = server.client.get("/metrics").text
    refused = 'domainflow_model_load_failures_total{model="flight-delay-EWR",reason="integrity",version="2"} 1.0'
    assert refused in metrics
    assert 'domainflow_model_loaded{domain="EWR",variant="canary",version="2"} 0.0' in metrics


def test_a_domain_without_a_champion_is_not_ready_until_one_is_registered(kit, registry, tmp_path):
    with kit.serve(kit.config(domains=("EWR", "JFK")), registry, tmp_path) as server:
        not_ready = server.client.get("/ready")
        assert not_ready.status_code == 503
        body = not_ready.json()
        assert body["domains"]["EWR"]["ready"] is True and body["domains"]["JFK"]["ready"] is False
        assert "no rollout and no `champion` alias on flight-delay-JFK" in body["domains"]["JFK"]["problems"][0]
        features = kit.features(registry.sample, 1)[0]
        refused = server.client.post("/predict", json={"domain": "JFK", "features": features})
        assert refused.status_code == 503 and "JFK" in refused.json()["detail"]

        version = register_model_version(registry.tracking_uri, "flight-delay-JFK", registry.logged[0], tags={})
        MlflowClient(registry.tracking_uri).set_registered_model_alias("flight-delay-JFK", CHAMPION, version)
        kit.wait_for(lambda: server.client.get("/ready").status_code == 200, "JFK's champion to load")
        served = server.client.post("/predict", json={"domain": "JFK", "features": features})
        assert served.status_code == 200
        assert served.json()["predictions"][0]["model_version"] == version


@pytest.fixture(scope="module")
def failing_version(registry, tmp_path_factory) -> str:
    """A third version of flight-delay-EWR whose model fails (see FAILING_MODEL)."""
    code = tmp_path_factory.mktemp("failing") / "failing_model.py"
    code.write_text(FAILING_MODEL)
    client = MlflowClient(registry.tracking_uri)
    experiment = client.create_experiment("failing", artifact_location=f"{registry.artifact_root}/failing")
    with fluent_tracking_uri(registry.tracking_uri), mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code), pip_requirements=[])
    logged = LoggedRun(run.info.run_id, info.model_uri, reused=False)
    return register_model_version(registry.tracking_uri, "flight-delay-EWR", logged, tags={})


def test_a_model_that_raises_fails_its_records_only_and_they_are_logged_with_the_error(
    server, kit, registry, failing_version
):
    arms = [Arm("champion", "1", 0.5), Arm("canary", failing_version, 0.5)]
    assert all(arm["loaded"] for arm in kit.serve_arms(server, arms)["arms"])
    request_ids = [f"boom-{uuid.uuid4().hex[:6]}-{i}" for i in range(30)]
    features = {**kit.features(registry.sample, 1)[0], "carrier": "BOOM"}
    response = server.client.post(
        "/predict", json={"domain": "EWR", "records": [{"request_id": r, "features": features} for r in request_ids]}
    )
    assert response.status_code == 500
    body = response.json()
    on_canary = {r for r in request_ids if route(r, arms).variant == "canary"}
    assert {f["request_id"] for f in body["failed"]} == on_canary
    assert {p["request_id"] for p in body["predictions"]} == set(request_ids) - on_canary
    assert "RuntimeError" in body["detail"]
    rows = kit.logged(server, request_ids)
    assert all(rows[r]["error"] == "RuntimeError: the model broke" and rows[r]["score"] is None for r in on_canary)
    assert all(rows[r]["error"] is None and rows[r]["score"] is not None for r in set(request_ids) - on_canary)
    # Failed predictions cannot be labelled.
    feedback = server.client.post("/feedback", json={"domain": "EWR", "labels": [
        {"request_id": r, "label": 1} for r in sorted(on_canary)[:1]]})  # fmt: skip
    assert feedback.status_code == 422 and "has no score" in feedback.json()["detail"]
    assert repr(sorted(on_canary)[0]) in feedback.json()["detail"]


def test_a_non_finite_score_fails_that_record_alone(server, kit, registry, failing_version):
    kit.serve_arms(server, [Arm("champion", "1", 0.0), Arm("canary", failing_version, 1.0)])
    features = kit.features(registry.sample, 1)[0]
    records = [{"request_id": f"nan-{uuid.uuid4().hex[:6]}-{i}", "features": {**features, "carrier": carrier}}
               for i, carrier in enumerate(["UA", "NAN", "DL"])]  # fmt: skip
    response = server.client.post("/predict", json={"domain": "EWR", "records": records})
    assert response.status_code == 500
    body = response.json()
    assert [f["request_id"] for f in body["failed"]] == [records[1]["request_id"]]
    assert [(p["score"], p["variant"]) for p in body["predictions"]] == [(0.5, "canary"), (0.5, "canary")]
    row = kit.logged(server, [records[1]["request_id"]])[records[1]["request_id"]]
    assert row["error"] == "the model returned a non-finite score"
