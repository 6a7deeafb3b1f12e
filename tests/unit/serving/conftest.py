"""A real registry for the server tests: two verified versions of flight-delay-EWR, `champion` on v1.

Each test module gets its own MLflow store (mlflow_store is module-scoped), so a module may
tamper with its versions or move aliases without touching another module's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from types import SimpleNamespace

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient
from sqlalchemy import select

from domainflow.access.keys import ADMIN, ROLES, create_key
from domainflow.config import DatasetSchema, PipelineConfig, build_config
from domainflow.optimization.torch_variants import build_fp32
from domainflow.registry.integrity import register_model_version
from domainflow.registry.mlflow_registry import CHAMPION, TAG, RunRecord, log_run
from domainflow.serving.app import create_app
from domainflow.serving.server import serve_in_background
from domainflow.settings import Settings
from domainflow.store.database import open_database
from domainflow.store.rollouts import Arm, set_rollout
from domainflow.store.schema import predictions

MODEL = "flight-delay-EWR"
ADMIN_TOKEN = "test-admin-token"


def serving_config(domains=("EWR",), **serving) -> PipelineConfig:
    return build_config({"domains": {"values": list(domains)},
                         "serving": {"refresh_seconds": 0.1, "max_batch_size": 300, **serving}})  # fmt: skip


@pytest.fixture(scope="module")
def registry(mlflow_store, trained_network, learnable_split, schema, tmp_path_factory):
    """(tracking_uri, artifact_root, logged runs, sample rows): v1 and v2 registered with their digests."""
    tracking_uri, artifact_root = mlflow_store
    _, validation, pipeline = learnable_split
    model_file = tmp_path_factory.mktemp("variant") / "fp32.pt"
    model_file.write_bytes(build_fp32(trained_network, pipeline.transform(validation)))
    sample = validation[schema.features].head(50)
    logged = []
    for key in ("serving-1", "serving-2"):
        record = RunRecord(
            experiment="flight-delay/EWR", run_name="train-EWR", run_key=key, params={"domain": "EWR"},
            metrics={"network_validation_auc": trained_network.best_val_auc}, tags={f"{TAG}domain": "EWR"},
            pipeline=pipeline, model_file=model_file, signature_sample=sample,
            signature_scores=trained_network.predict(pipeline, sample),
        )  # fmt: skip
        run = log_run(tracking_uri, artifact_root, record)
        register_model_version(tracking_uri, MODEL, run, tags={f"{TAG}run_key": key})
        logged.append(run)
    MlflowClient(tracking_uri).set_registered_model_alias(MODEL, CHAMPION, "1")
    return SimpleNamespace(tracking_uri=tracking_uri, artifact_root=artifact_root, logged=logged, sample=sample)


def feature_dicts(sample: pd.DataFrame, rows: int) -> list[dict]:
    """JSON-ready features: numbers as floats, categories as strings, missing values as null."""
    numeric = set(DatasetSchema().numeric_features)
    return [
        {k: None if pd.isna(v) else float(v) if k in numeric else str(v) for k, v in row.items()}
        for row in sample.head(rows).to_dict("records")
    ]


@contextmanager
def running_server(
    config: PipelineConfig, registry, tmp_path, admin_token: str | None = ADMIN_TOKEN, database_url: str | None = None
):
    """The app served on a free port, with a key of each role for every domain (`keys`, by role).

    Its `client` sends the admin key, which may do everything; `as_role(role)` gives headers of another
    role's key, and `anonymous` is a client with no key. Two servers given one `database_url` are two
    replicas of one deployment.
    """
    settings = Settings(home=tmp_path, tracking_uri=registry.tracking_uri, artifact_root=registry.artifact_root,
                        database_url=database_url or f"sqlite:///{tmp_path / 'serving.db'}",
                        admin_token=admin_token)  # fmt: skip
    engine = open_database(settings.database_url)
    keys = {role: create_key(engine, role, ["*"], f"pytest {role}", "pytest").token for role in ROLES}
    app = create_app(config, settings)
    with (
        serve_in_background(app) as url,
        httpx.Client(base_url=url, timeout=60, headers=bearer(keys[ADMIN])) as client,
        httpx.Client(base_url=url, timeout=60) as anonymous,
    ):
        yield SimpleNamespace(url=url, client=client, anonymous=anonymous, app=app, settings=settings, config=config,
                              engine=engine, keys=keys, as_role=lambda role: bearer(keys[role]))  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0):
    """Poll until `condition()` is truthy (the refresher runs every 0.1 s here); its value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def serve_arms(server, arms: list[Arm]) -> dict:
    """Write EWR's rollout as the canary controller would; the server's view once it serves that revision."""
    revision = set_rollout(server.engine, "EWR", MODEL, arms, "test", "pytest").revision
    return wait_for(
        lambda: (view := server.client.get("/rollouts/EWR").json())["revision"] == revision and view,
        f"rollout revision {revision}",
    )


def logged_rows(server, request_ids) -> dict[str, dict]:
    """The prediction log's rows of `request_ids`, once the server's writer has written what it holds."""
    server.app.state.serving.writer.flush()
    query = select(predictions).where(predictions.c.request_id.in_(list(request_ids)))
    with server.engine.connect() as connection:
        return {row.request_id: row._asdict() for row in connection.execute(query)}


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers above, for the test modules (a conftest is not imported by name)."""
    return SimpleNamespace(model=MODEL, admin_token=ADMIN_TOKEN, config=serving_config, serve=running_server,
                           features=feature_dicts, wait_for=wait_for, serve_arms=serve_arms,
                           logged=logged_rows, bearer=bearer)  # fmt: skip
