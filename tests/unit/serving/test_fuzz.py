"""Schemathesis fuzzes every route of a live server (admin token set): no request may end in a 5xx.

The schema is the app's own OpenAPI document, built without a server (create_app does no
I/O); the cases are sent over HTTP to a server started with the same config.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from domainflow.config import build_config
from domainflow.serving.app import create_app
from domainflow.settings import Settings

CONFIG = build_config({"domains": {"values": ["EWR"]}, "serving": {"refresh_seconds": 0.1, "max_batch_size": 16}})
schema = schemathesis.openapi.from_dict(create_app(CONFIG, Settings(Path("unused"), "unused", "unused")).openapi())


@pytest.fixture(scope="module")
def fuzzed_server(kit, registry, tmp_path_factory):
    with kit.serve(CONFIG, registry, tmp_path_factory.mktemp("fuzz")) as server:
        yield server


# One test per route with its own id (schemathesis' own parametrize gives every route the same node id,
# which pytest-xdist collapses into one).
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_no_route_answers_a_server_error(operation, fuzzed_server, kit):
    headers = {"Authorization": f"Bearer {kit.admin_token}"}

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def no_server_error(case):
        case.call_and_validate(base_url=fuzzed_server.url, headers=headers, checks=[not_a_server_error])

    no_server_error()
