from __future__ import annotations

import pytest

from domainflow.config import PipelineConfig, build_config

from ..conftest import tiny_overrides


@pytest.fixture(scope="session", autouse=True)
def prefect_api():
    """One temporary Prefect API (SQLite) for every flow test."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def tiny_config(flights_sample_csv) -> PipelineConfig:
    return build_config(tiny_overrides(flights_sample_csv))
