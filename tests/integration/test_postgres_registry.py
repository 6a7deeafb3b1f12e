"""The production shape of the registry: MLflow's backend store on PostgreSQL."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from domainflow.config import build_config

from ..conftest import SAMPLE_DOMAINS, tiny_overrides

pytestmark = pytest.mark.integration


def test_lifecycle_registers_into_a_postgresql_backed_registry(
    postgres_database, prefect_api, flights_sample_csv, tmp_path, monkeypatch
):
    from domainflow.flows.lifecycle import run_lifecycle

    monkeypatch.setenv("DOMAINFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", postgres_database)
    config = build_config(tiny_overrides(flights_sample_csv))

    state = run_lifecycle(config=config, return_state=True)

    assert state.is_completed(), state.message
    client = MlflowClient(postgres_database)
    for domain in SAMPLE_DOMAINS:
        model = client.get_registered_model(config.registered_model_name(domain))
        assert set(model.aliases) == {"champion", "challenger"}
    assert not (tmp_path / "home" / "mlflow.db").exists()
