"""Schemathesis fuzzes every route of a live server with every kind of credential: no request may end in a
5xx, and none without a valid key of a role the route admits may end in a 2xx (only /health, /ready,
/metrics and the docs are open).

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

CONFIG = build_config(
    {"domains": {"values": ["EWR"]}, "serving": {"refresh_seconds": 0.1, "max_batch_size": 16, "label_wait_seconds": 0}}
)
schema = schemathesis.openapi.from_dict(create_app(CONFIG, Settings(Path("unused"), "unused", "unused")).openapi())


@pytest.fixture(scope="module")
def fuzzed_server(kit, registry, tmp_path_factory):
    with kit.serve(CONFIG, registry, tmp_path_factory.mktemp("fuzz")) as server:
        yield server


# One test per route with its own id (schemathesis' own parametrize gives every route the same node id,
# which pytest-xdist collapses into one).
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


OPEN = {"/health", "/ready", "/metrics"}
# Credential -> the routes (path templates) it may use; every other protected route must refuse it.
CREDENTIALS = {
    "admin key": None,  # everything
    "admin token": None,
    "predictor key": {"/predict"},
    "labeller key": {"/feedback"},
    "no key": set(),
    "malformed key": set(),
}


def _headers(credential: str, server, kit) -> dict[str, str]:
    if credential == "admin token":
        return kit.bearer(kit.admin_token)
    if credential == "malformed key":
        return kit.bearer("dfk_not-a-key")
    if credential == "no key":
        return {}
    return server.as_role(credential.split()[0])


@pytest.mark.parametrize("credential", list(CREDENTIALS))
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_no_route_answers_a_server_error_or_serves_a_caller_it_should_refuse(operation, credential, fuzzed_server,
                                                                              kit):  # fmt: skip
    headers = _headers(credential, fuzzed_server, kit)
    allowed = CREDENTIALS[credential]
    refused = allowed is not None and operation.path not in OPEN | allowed

    def refused_callers_get_no_2xx(ctx, response, case):
        if refused and 200 <= response.status_code < 300:
            raise AssertionError(f"{credential} got {response.status_code} from {case.method} {case.path}")

    @given(case=operation.as_strategy())
    # Every route with the admin's key; fewer examples for the refusals, which stop before the route's work.
    @settings(max_examples=40 if allowed is None else 10, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)  # fmt: skip
    def fuzzed(case):
        case.call_and_validate(base_url=fuzzed_server.url, headers=headers,
                               checks=[not_a_server_error, refused_callers_get_no_2xx])  # fmt: skip

    fuzzed()
