"""Model artifacts on S3: a training run whose artifact root is a bucket (moto's S3 server on loopback).

The version's files land in the bucket, and the prediction server loads and verifies them from there.
"""

from __future__ import annotations

import time

import httpx
import pytest

from domainflow.config import build_config
from domainflow.serving.app import create_app
from domainflow.serving.server import serve_in_background
from domainflow.settings import resolve_settings

from ..conftest import tiny_overrides

pytestmark = pytest.mark.integration


def test_a_version_trained_with_an_s3_artifact_root_lands_in_the_bucket_and_serves_from_it(
    flights_sample_csv, domainflow_home, moto_s3, monkeypatch
):
    from domainflow.flows.training import train_domain_model

    moto_s3.create_bucket(Bucket="mlflow")
    monkeypatch.setenv("DOMAINFLOW_ARTIFACT_ROOT", "s3://mlflow/artifacts")
    config = build_config({**tiny_overrides(flights_sample_csv), "domains": {"values": ["EWR"]}})

    outcome = train_domain_model("EWR", config)

    assert outcome.status == "registered" and outcome.version == "1"
    keys = [o["Key"] for page in moto_s3.get_paginator("list_objects_v2").paginate(Bucket="mlflow")
            for o in page.get("Contents", [])]  # fmt: skip
    assert any(key.endswith("/MLmodel") for key in keys), keys[:20]
    assert any(key.endswith("evaluation/gate_verdict.json") for key in keys)
    assert not (domainflow_home / "mlartifacts").exists()  # nothing went to the local default

    with serve_in_background(create_app(config, resolve_settings()), host="127.0.0.1", port=0) as url:
        features = {"distance": 719.0, "sched_dep_hour": 9.0, "carrier": "UA", "dest": "ORD"}
        answer = httpx.post(f"{url}/predict", json={"domain": "EWR", "features": features}, timeout=60)
        for _ in range(50):  # the server loads the champion from the bucket in the background
            if answer.status_code != 503:
                break
            time.sleep(0.2)
            answer = httpx.post(f"{url}/predict", json={"domain": "EWR", "features": features}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["model_version"] == "1"
