"""The production stack, set by environment alone: MLflow on PostgreSQL with artifacts on S3, the
serving state and the Optuna studies on PostgreSQL, the training data and the quarantined rows on S3.

PostgreSQL is the one on this machine (and in CI); S3 is moto's server on loopback, a real HTTP
S3 API. The lifecycle trains both domains at once in worker processes; the prediction server
loads the champion from the bucket, and its rollout and log survive a restart.
"""

from __future__ import annotations

import time

import httpx
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from sqlalchemy import func, select

from domainflow.config import build_config
from domainflow.serving.app import create_app
from domainflow.serving.server import serve_in_background
from domainflow.settings import resolve_settings
from domainflow.store.audit import read_audit
from domainflow.store.database import open_database
from domainflow.store.schema import predictions

from ..conftest import SAMPLE_DOMAINS, tiny_overrides

pytestmark = pytest.mark.integration

TOKEN = "integration-admin-token-0123456789abcdef"
# The bootstrap admin credential may do everything: predict, label, read and change rollouts.
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
FEATURES = {"distance": 719.0, "sched_dep_hour": 9.0, "carrier": "UA", "dest": "ORD"}


def bucket_keys(s3, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def predict(url: str, request_id: str) -> httpx.Response:
    """POST one record; the server loads the champion from the bucket in the background, so wait for it."""
    body = {"domain": "EWR", "features": FEATURES, "request_id": request_id}
    for _ in range(100):
        answer = httpx.post(f"{url}/predict", json=body, headers=ADMIN, timeout=60)
        if answer.status_code != 503:
            return answer
        time.sleep(0.2)
    return answer


def test_the_lifecycle_and_the_server_run_on_postgresql_and_s3(
    postgres_databases, moto_s3, prefect_api, flights_sample_csv, tmp_path, monkeypatch
):
    from domainflow.flows.lifecycle import run_lifecycle

    tracking, serving, studies = postgres_databases(), postgres_databases(), postgres_databases()
    moto_s3.create_bucket(Bucket="data")
    moto_s3.create_bucket(Bucket="mlflow")
    flights = pd.read_csv(flights_sample_csv)
    flights.loc[len(flights)] = {**flights.iloc[0].to_dict(), "distance": -719.0}  # a row validation must quarantine
    moto_s3.put_object(Bucket="data", Key="flights/sample.csv", Body=flights.to_csv(index=False).encode())
    home = tmp_path / "home"
    for name, value in {
        "DOMAINFLOW_HOME": str(home),
        "MLFLOW_TRACKING_URI": tracking,
        "DOMAINFLOW_ARTIFACT_ROOT": "s3://mlflow/artifacts",
        "DOMAINFLOW_DATABASE_URL": serving,
        "DOMAINFLOW_ADMIN_TOKEN": TOKEN,
        "DOMAINFLOW_OUTPUT_ROOT": "s3://data/outputs",
    }.items():
        monkeypatch.setenv(name, value)
    overrides = tiny_overrides("s3://data/flights/sample.csv")
    config = build_config({
        **overrides, "tuning": {**overrides["tuning"], "storage": studies}, "scale": {"domain_workers": 2},
    })  # fmt: skip

    state = run_lifecycle(config=config, return_state=True)

    assert state.is_completed(), state.message
    quarantined = [o.quarantine_path for o in state.result() if o.rows_quarantined]
    assert len(quarantined) == 1 and quarantined[0].startswith("s3://data/outputs/quarantine/")
    assert any(key.startswith("outputs/quarantine/") for key in bucket_keys(moto_s3, "data"))
    client = MlflowClient(tracking)
    engine = open_database(serving)
    keys = bucket_keys(moto_s3, "mlflow")
    for domain in SAMPLE_DOMAINS:
        model = client.get_registered_model(config.registered_model_name(domain))
        assert {a: str(v) for a, v in model.aliases.items()} == {"champion": "1", "challenger": "1"}
        run_id = client.get_model_version(model.name, "1").run_id
        assert any(run_id in key and key.endswith("evaluation/gate_verdict.json") for key in keys), domain
        assert [(e.subject, e.after) for e in read_audit(engine, domain) if e.action == "alias"] == [
            ("challenger", "1"), ("champion", "1"),
        ]  # fmt: skip
    assert sum(key.endswith("/MLmodel") for key in keys) == len(SAMPLE_DOMAINS)
    assert len(optuna.get_all_study_names(storage=studies)) == len(SAMPLE_DOMAINS)
    # Nothing went to the local defaults.
    assert not any((home / name).exists() for name in ("mlflow.db", "mlartifacts", "domainflow.db"))

    pinned = {"arms": [{"variant": "champion", "version": "1", "weight": 1.0}], "reason": "pinned before a restart"}
    with serve_in_background(create_app(config, resolve_settings()), host="127.0.0.1", port=0) as url:
        before = predict(url, "before-restart")
        assert before.status_code == 200, before.text
        assert before.json()["predictions"][0]["model_version"] == "1"
        changed = httpx.put(f"{url}/admin/rollouts/EWR", json=pinned, headers=ADMIN, timeout=30)
        assert changed.status_code == 200, changed.text
        revision = changed.json()["revision"]

    with serve_in_background(create_app(config, resolve_settings()), host="127.0.0.1", port=0) as url:
        rollout = httpx.get(f"{url}/rollouts/EWR", headers=ADMIN, timeout=30).json()
        after = predict(url, "after-restart")
        labels = [{"request_id": "before-restart", "label": 1}, {"request_id": "after-restart", "label": 0}]
        feedback = httpx.post(f"{url}/feedback", json={"domain": "EWR", "labels": labels}, headers=ADMIN, timeout=30)

    assert (rollout["source"], rollout["revision"], rollout["reason"]) == ("rollout", revision, pinned["reason"])
    assert after.status_code == 200 and after.json()["predictions"][0]["model_version"] == "1"
    assert feedback.status_code == 200, feedback.text
    with engine.connect() as connection:
        logged = connection.execute(select(func.count()).select_from(predictions)).scalar_one()
    assert logged == 2  # the log on PostgreSQL kept the request from before the restart
