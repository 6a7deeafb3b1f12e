"""Who may call the server: every role against every route, the keys' states and scopes, rate limits, labels.

Over real HTTP, with keys made in the server's own database the way `domainflow keys create` makes them.
"""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from sqlalchemy import select, update

from domainflow.access.keys import ADMIN, LABELLER, OPERATOR, PREDICTOR, create_key, revoke_key
from domainflow.store.prediction_log import logged_request_ids
from domainflow.store.schema import api_keys, feedback

LIMITS = {
    "predictor": {"requests_per_minute": 1_000, "records_per_minute": 1_000},
    # Tight for the flood test; no other test here predicts with a key of its own.
    "labeller": {"requests_per_minute": 5, "records_per_minute": 100},
}


@pytest.fixture(scope="module")
def server(kit, registry, tmp_path_factory):
    config = kit.config(key_cache_seconds=0, label_wait_seconds=5, rate_limits=LIMITS)
    with kit.serve(config, registry, tmp_path_factory.mktemp("access")) as running:
        yield running


@pytest.fixture
def features(kit, registry):
    return kit.features(registry.sample, 5)


def _predicted(server, features, n: int = 1) -> list[str]:
    ids = [f"acc-{uuid.uuid4().hex[:10]}" for _ in range(n)]
    records = [{"request_id": rid, "features": features[0]} for rid in ids]
    answer = server.client.post("/predict", json={"domain": "EWR", "records": records})
    assert answer.status_code == 200, answer.text
    return ids


def _call(server, route: str, headers: dict, features) -> int:
    """One call of `route` as the holder of `headers`; its status."""
    client = server.anonymous
    if route == "predict":
        body = {"domain": "EWR", "records": [{"features": features[0]}]}
        return client.post("/predict", json=body, headers=headers).status_code
    if route == "feedback":
        [request_id] = _predicted(server, features)
        body = {"domain": "EWR", "labels": [{"request_id": request_id, "label": 1}]}
        return client.post("/feedback", json=body, headers=headers).status_code
    if route == "read rollout":
        return client.get("/rollouts/EWR", headers=headers).status_code
    if route == "set weights":
        change = {"arms": [{"variant": "champion", "version": "1", "weight": 1.0}], "reason": "matrix"}
        return client.put("/admin/rollouts/EWR", json=change, headers=headers).status_code
    if route == "roll back":
        return client.post("/admin/rollouts/EWR/rollback", json={"reason": "matrix"}, headers=headers).status_code
    return client.get(f"/{route}", headers=headers).status_code


# route -> the roles it answers 2xx to; every other role gets 403, no key 401.
MATRIX = {
    "predict": {PREDICTOR, ADMIN},
    "feedback": {LABELLER, ADMIN},
    "read rollout": {OPERATOR, ADMIN},
    "roll back": {OPERATOR, ADMIN},
    "set weights": {ADMIN},
}
OPEN = ("health", "ready", "metrics")


@pytest.mark.parametrize("route", [*MATRIX, *OPEN])
def test_every_role_against_every_route(server, features, route):
    answers = {role: _call(server, route, server.as_role(role), features) for role in (PREDICTOR, LABELLER, OPERATOR,
                                                                                       ADMIN)}  # fmt: skip
    answers["no key"] = _call(server, route, {}, features)
    if route in OPEN:
        assert answers == dict.fromkeys(answers, 200)
        return
    expected = {role: 200 if role in MATRIX[route] else 403 for role in (PREDICTOR, LABELLER, OPERATOR, ADMIN)}
    assert answers == {**expected, "no key": 401}


def test_a_wrong_role_is_told_which_role_the_route_needs(server, features):
    answer = server.anonymous.post("/feedback", json={"domain": "EWR", "labels": [{"request_id": "x", "label": 1}]},
                                   headers=server.as_role(PREDICTOR))  # fmt: skip
    assert answer.status_code == 403
    assert "has role predictor; to label needs role labeller or admin" in answer.json()["detail"]


def test_malformed_unknown_revoked_expired_and_other_domain_keys_are_refused_naming_why(server, kit, features):
    body = {"domain": "EWR", "records": [{"features": features[0]}]}
    unknown = "dfk_0123456789abcdef_" + "A" * 43
    jfk = create_key(server.engine, PREDICTOR, ["JFK"], "jfk only", "pytest").token
    revoked = create_key(server.engine, PREDICTOR, ["EWR"], "to revoke", "pytest")
    revoke_key(server.engine, revoked.key.key_id, "pytest", "leaked")
    expired = create_key(server.engine, PREDICTOR, ["EWR"], "to expire", "pytest", expires_at=time.time() + 60)
    with server.engine.begin() as connection:
        connection.execute(update(api_keys).where(api_keys.c.key_id == expired.key.key_id).values(expires_at=1.0))
    cases = {
        "not-a-key": (401, "malformed API key"),
        unknown: (401, "unknown API key 0123456789abcdef"),
        revoked.token: (401, f"API key {revoked.key.key_id} was revoked at"),
        expired.token: (401, f"API key {expired.key.key_id} expired at 1970-01-01"),
        jfk: (403, "may act on JFK only, not EWR"),
        # The right secret's key id with another secret is not that key.
        revoked.token[:-4] + "AAAA": (401, "unknown API key"),
    }
    for token, (status, named) in cases.items():
        answer = server.anonymous.post("/predict", json=body, headers=kit.bearer(token))
        assert (answer.status_code, named in answer.json()["detail"]) == (status, True), answer.text
    assert server.anonymous.post("/predict", json=body).json()["detail"].startswith("this route needs an API key")


def test_a_revoked_key_stops_working_without_a_restart(server, kit, features):
    made = create_key(server.engine, PREDICTOR, ["EWR"], "revoked while in use", "pytest")
    body = {"domain": "EWR", "records": [{"features": features[0]}]}
    assert server.anonymous.post("/predict", json=body, headers=kit.bearer(made.token)).status_code == 200
    revoke_key(server.engine, made.key.key_id, "pytest", "rotated")
    # key_cache_seconds is 0 here; by default a server notices within 5 s.
    assert server.anonymous.post("/predict", json=body, headers=kit.bearer(made.token)).status_code == 401


def test_a_flood_beyond_the_keys_limit_is_a_429_with_retry_after_and_other_keys_go_on(server, kit, features):
    flooder = create_key(server.engine, LABELLER, ["EWR"], "flooder", "pytest").token
    other = create_key(server.engine, LABELLER, ["EWR"], "other", "pytest").token
    ids = _predicted(server, features, 3)
    answers = [
        server.anonymous.post("/feedback", json={"domain": "EWR", "labels": [{"request_id": ids[0], "label": 1}]},
                              headers=kit.bearer(flooder))
        for _ in range(6)
    ]  # fmt: skip
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert "more than 5 requests in a minute" in answers[-1].json()["detail"]
    # Another key has a budget of its own.
    labels = {"domain": "EWR", "labels": [{"request_id": ids[1], "label": 0}]}
    assert server.anonymous.post("/feedback", json=labels, headers=kit.bearer(other)).status_code == 200
    # More records in one request than the key may send a minute: no wait would help, and the message says so.
    many = {"domain": "EWR", "labels": [{"request_id": f"x{i}", "label": 1} for i in range(101)]}
    too_big = server.anonymous.post("/feedback", json=many, headers=kit.bearer(other))
    assert too_big.status_code == 429 and "send smaller batches" in too_big.json()["detail"]
    with server.engine.connect() as connection:
        stored = connection.execute(select(feedback.c.request_id).where(feedback.c.request_id.in_(ids))).scalars()
        assert sorted(stored) == sorted(ids[:2])


def test_a_label_for_a_prediction_still_queued_on_another_replica_is_held_until_it_is_logged(
    server, kit, registry, tmp_path, features
):
    with kit.serve(server.config, registry, tmp_path, database_url=server.settings.database_url) as other:
        writer = other.app.state.serving.writer
        writer.interval = 1.5  # the other replica writes its queue every 1.5 s
        time.sleep(0.2)
        request_id = f"replica-{uuid.uuid4().hex[:8]}"
        body = {"domain": "EWR", "records": [{"request_id": request_id, "features": features[0]}]}
        assert other.client.post("/predict", json=body).status_code == 200
        assert logged_request_ids(server.engine, [request_id]) == []  # still in the other replica's queue
        label = {"domain": "EWR", "labels": [{"request_id": request_id, "label": 1}]}
        answer = server.anonymous.post("/feedback", json=label, headers=server.as_role(LABELLER))
    assert answer.status_code == 200 and answer.json()["accepted"] == 1


def test_serving_without_keys_is_an_explicit_choice_logged_loudly(kit, registry, tmp_path, features, caplog):
    caplog.set_level(logging.WARNING, logger="domainflow.serving.state")
    with kit.serve(kit.config(authentication="none"), registry, tmp_path) as open_server:
        body = {"domain": "EWR", "records": [{"request_id": "anon-1", "features": features[0]}]}
        assert open_server.anonymous.post("/predict", json=body).status_code == 200
        assert open_server.anonymous.get("/rollouts/EWR").status_code == 200
        change = {"arms": [{"variant": "champion", "version": "1", "weight": 1.0}], "reason": "open?"}
        assert open_server.anonymous.put("/admin/rollouts/EWR", json=change).status_code == 401
        assert kit.logged(open_server, ["anon-1"])["anon-1"]["key_id"] == "anonymous"
    assert any("ANYONE who can reach this server" in r.getMessage() for r in caplog.records)
