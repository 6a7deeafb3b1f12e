from __future__ import annotations

import pytest

from domainflow.config import PipelineConfig, build_config

from ..conftest import tiny_overrides


@pytest.fixture(scope="session", autouse=True)
def _flows_talk_to_prefect(prefect_api):
    yield


@pytest.fixture
def tiny_config(flights_sample_csv) -> PipelineConfig:
    return build_config(tiny_overrides(flights_sample_csv))
