"""The prediction server over real HTTP: predictions and their log, routing, feedback, admin, validation, metrics."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, inspect, select
from sqlalchemy.exc import IntegrityError, OperationalError

from domainflow.serving.log_writer import PredictionWriter
from domainflow.serving.routing import route
from domainflow.store.audit import read_audit
from domainflow.store.prediction_log import PredictionRecord, record_predictions
from domainflow.store.rollouts import Arm, read_rollout
from domainflow.store.schema import feedback, predictions


@pytest.fixture(scope="module")
def server(kit, registry, tmp_path_factory):
    # Labels for ids not logged yet are looked for again for half a second (5 s by default).
    with kit.serve(kit.config(label_wait_seconds=0.5), registry, tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture
def features(kit, registry):
    return kit.features(registry.sample, 50)


def ids(prefix: str, n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"{prefix}-{run}-{i}" for i in range(n)]


def admin(kit) -> dict:
    return {"Authorization": f"Bearer {kit.admin_token}"}


def test_single_and_batch_predictions_are_answered_and_logged_alike(server, kit, features):
    kit.serve_arms(server, [Arm("champion", "1", 1.0)])
    single = server.client.post("/predict", json={"domain": "EWR", "request_id": "one-1", "features": features[0]})
    assert single.status_code == 200
    [only] = single.json()["predictions"]
    assert (only["request_id"], only["variant"], only["model_version"]) == ("one-1", "champion", "1")
    assert 0 <= only["score"] <= 1

    batch = server.client.post("/predict", json={"domain": "EWR", "records": [{"features": f} for f in features[:5]]})
    assert batch.status_code == 200
    answered = batch.json()["predictions"]
    assert len(answered) == 5 and len({p["request_id"] for p in answered}) == 5  # server-made ids
    # The same features score the same, alone or in a batch.
    assert answered[0]["score"] == pytest.approx(only["score"], abs=1e-6)

    rows = kit.logged(server, [p["request_id"] for p in [only, *answered]])
    for p in [only, *answered]:
        row = rows[p["request_id"]]
        assert (row["variant"], row["model_version"], row["domain"]) == (p["variant"], p["model_version"], "EWR")
        assert row["score"] == pytest.approx(p["score"]) and row["error"] is None
        assert row["latency_ms"] > 0
    assert rows["one-1"]["features"] == features[0]
    assert all(row["event_time"] is None for row in rows.values())


def test_the_event_time_is_logged_as_utc_when_sent(server, kit, features):
    kit.serve_arms(server, [Arm("champion", "1", 1.0)])
    records = [
        _record(features[0], request_id="at-1", event_time="2013-10-02T07:30:00"),
        _record(features[1], request_id="at-2", event_time="2013-10-02T07:30:00-04:00"),
    ]
    assert server.client.post("/predict", json={"domain": "EWR", "records": records}).status_code == 200
    rows = kit.logged(server, ["at-1", "at-2"])
    # No zone reads as UTC; a zone is honoured.
    assert rows["at-1"]["event_time"] == datetime(2013, 10, 2, 7, 30, tzinfo=UTC).timestamp()
    assert rows["at-2"]["event_time"] == datetime(2013, 10, 2, 11, 30, tzinfo=UTC).timestamp()


def test_routing_follows_the_rollout_and_its_changes_without_a_restart(server, kit, features):
    for weights in ((0.9, 0.1), (0.5, 0.5)):
        arms = [Arm("champion", "1", weights[0]), Arm("canary", "2", weights[1])]
        kit.serve_arms(server, arms)
        # Fixed ids (not random ones): the split is a hash of the id, so the share is the same on every run.
        request_ids = [f"route-{weights[1]}-{i}" for i in range(300)]
        records = [{"request_id": rid, "features": features[i % 50]} for i, rid in enumerate(request_ids)]
        response = server.client.post("/predict", json={"domain": "EWR", "records": records})
        assert response.status_code == 200
        answered = response.json()["predictions"]
        expected = {rid: route(rid, arms) for rid in request_ids}
        assert [(p["variant"], p["model_version"]) for p in answered] == [
            (expected[rid].variant, expected[rid].version) for rid in request_ids
        ]
        canary_share = sum(p["variant"] == "canary" for p in answered) / len(answered)
        assert canary_share == pytest.approx(weights[1], abs=0.08)
        rows = kit.logged(server, request_ids)
        assert all(rows[p["request_id"]]["variant"] == p["variant"] for p in answered)


def test_feedback_joins_predictions_at_once_all_or_nothing_and_the_first_label_stands(server, kit, features):
    request_ids = ids("fb", 3)
    records = [{"request_id": rid, "features": f} for rid, f in zip(request_ids, features, strict=False)]
    assert server.client.post("/predict", json={"domain": "EWR", "records": records}).status_code == 200
    labeller = server.as_role("labeller")
    # One id never predicted: the request is refused naming it, and none of its labels is stored.
    labels = [{"request_id": request_ids[0], "label": 1}, {"request_id": "never-predicted", "label": 1}]
    refused = server.client.post("/feedback", json={"domain": "EWR", "labels": labels}, headers=labeller)
    assert refused.status_code == 404 and "'never-predicted'" in refused.json()["detail"]
    assert _labels(server, request_ids) == {}
    # Straight after the predictions: the server flushes its log writer before the join.
    labels = [{"request_id": request_ids[0], "label": 1}, {"request_id": request_ids[1], "label": 0}]
    first = server.client.post("/feedback", json={"domain": "EWR", "labels": labels}, headers=labeller)
    assert first.status_code == 200 and first.json() == {"accepted": 2, "duplicates": []}
    again = server.client.post("/feedback", json={"domain": "EWR", "labels": labels[:1]}, headers=labeller)
    assert again.status_code == 200 and again.json() == {"accepted": 0, "duplicates": [request_ids[0]]}
    # The other label for an id already labelled: 409, the first label stands, the third id is not stored.
    relabel = [{"request_id": request_ids[0], "label": 0}, {"request_id": request_ids[2], "label": 1}]
    conflict = server.client.post("/feedback", json={"domain": "EWR", "labels": relabel}, headers=labeller)
    assert conflict.status_code == 409 and f"'{request_ids[0]}'" in conflict.json()["detail"]
    labeller_id = server.keys["labeller"].split("_")[1]
    assert _labels(server, request_ids) == {request_ids[0]: (1, labeller_id), request_ids[1]: (0, labeller_id)}
    conflicts = _metric(server, "domainflow_feedback_conflicts_total", key_id=labeller_id)
    assert conflicts == 1
    # Each prediction names the key that asked for it (the module's client sends the admin key).
    admin_id = server.keys["admin"].split("_")[1]
    assert {row["key_id"] for row in kit.logged(server, request_ids).values()} == {admin_id}


def _labels(server, request_ids) -> dict[str, tuple[int, str]]:
    query = select(feedback.c.request_id, feedback.c.label, feedback.c.key_id).where(
        feedback.c.request_id.in_(request_ids)
    )
    with server.engine.connect() as connection:
        return {row.request_id: (row.label, row.key_id) for row in connection.execute(query)}


def _metric(server, name: str, **labels) -> float:
    text = server.client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_admin_routes_need_the_token_and_audit_what_they_change(server, kit):
    change = {"arms": [{"variant": "champion", "version": "1", "weight": 0.8},
                       {"variant": "canary", "version": 2, "weight": 0.2}], "reason": "canary at 20%"}  # fmt: skip
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        refused = server.anonymous.put("/admin/rollouts/EWR", json=change, headers=headers)
        assert refused.status_code == 401 and "key" in refused.json()["detail"]
        assert refused.headers["WWW-Authenticate"] == "Bearer"

    accepted = server.client.put("/admin/rollouts/EWR", json=change, headers=admin(kit))
    assert accepted.status_code == 200
    view = accepted.json()
    assert [(a["variant"], a["version"], a["weight"], a["loaded"]) for a in view["arms"]] == [
        ("champion", "1", 0.8, True), ("canary", "2", 0.2, True)
    ]  # fmt: skip
    assert read_rollout(server.engine, "EWR").weight_of("canary") == 0.2

    rolled_back = server.client.post("/admin/rollouts/EWR/rollback", json={"reason": "bad canary"}, headers=admin(kit))
    assert rolled_back.status_code == 200
    assert [(a["variant"], a["version"], a["weight"]) for a in rolled_back.json()["arms"]] == [("champion", "1", 1.0)]
    audit = read_audit(server.engine, "EWR")[-2:]
    assert [(e.reason, e.actor) for e in audit] == [("canary at 20%", "admin-token"), ("bad canary", "admin-token")]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"arms": [{"variant": "champion", "version": "1", "weight": 0.5}], "reason": "half"}, "sum to 1"),
        ({"arms": [{"variant": "champion", "version": "99", "weight": 1.0}], "reason": "typo"}, "no version 99"),
        ({"arms": [{"variant": "champion", "version": "1", "weight": "1"}], "reason": "text"}, "weight"),
    ],
)
def test_a_bad_rollout_is_refused_naming_the_problem(server, kit, change, named):
    before = server.client.get("/rollouts/EWR").json()["revision"]
    response = server.client.put("/admin/rollouts/EWR", json=change, headers=admin(kit))
    assert response.status_code == 422 and named in response.text
    assert server.client.get("/rollouts/EWR").json()["revision"] == before


def _changes(n: int, first: int = 1) -> list[dict]:
    """`n` different changes of EWR's weights, each with its own reason (from change `first` on, of at most 40)."""
    return [{"arms": [{"variant": "champion", "version": "1", "weight": 1 - i / 40},
                      {"variant": "canary", "version": "2", "weight": i / 40}], "reason": f"change {i}"}
            for i in range(first, first + n)]  # fmt: skip


def _put_at_once(url: str, changes: list[dict], headers: dict) -> list:
    """Every change sent at the same instant, each on its own connection (threads released by a barrier)."""
    barrier = threading.Barrier(len(changes))

    def put(change: dict):
        with httpx.Client(base_url=url, timeout=60) as client:
            barrier.wait()
            return client.put("/admin/rollouts/EWR", json=change, headers=headers)

    with ThreadPoolExecutor(len(changes)) as pool:
        return list(pool.map(put, changes))


def _arms(body: dict) -> list[tuple]:
    return [(a["variant"], a["version"], a["weight"]) for a in body["arms"]]


@pytest.mark.parametrize("if_match", [True, False], ids=["with If-Match", "without If-Match"])
def test_concurrent_admin_changes_are_never_a_500_and_each_200_shows_its_own_change(kit, registry, tmp_path, if_match):
    with kit.serve(kit.config(), registry, tmp_path) as fresh:
        for first, round_ in ((1, "no rollout yet"), (11, "a rollout")):
            etag = fresh.client.get("/rollouts/EWR").headers.get("ETag", '"0"')
            # Other weights in the second round: a change to the weights already set is a no-op, answered 200.
            changes = _changes(10, first)
            headers = {**admin(kit), **({"If-Match": etag} if if_match else {})}
            answers = _put_at_once(fresh.url, changes, headers)

            assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers if a.status_code != 200]
            accepted = [(change, a) for change, a in zip(changes, answers, strict=True) if a.status_code == 200]
            for change, answer in accepted:
                assert _arms(answer.json()) == [(a["variant"], a["version"], a["weight"]) for a in change["arms"]]
                assert answer.json()["reason"] == change["reason"]
                pass
            revisions = sorted(a.json()["revision"] for _, a in accepted)
            assert len(set(revisions)) == len(revisions), round_
            rollout = read_rollout(fresh.engine, "EWR")
            assert rollout.revision == revisions[-1]
            last = next(change for change, a in accepted if a.json()["revision"] == revisions[-1])
            assert rollout.reason == last["reason"]
            if if_match:
                assert len(accepted) == 1, (round_, [a.text for a in answers])
                named = f"is at revision {rollout.revision}, not {int(etag.strip(chr(34)))}"
                for refused in [a for a in answers if a.status_code == 409]:
                    assert named in refused.json()["detail"] and refused.headers["ETag"] == f'"{rollout.revision}"'
            # What was refused left no trace: the audit has exactly the accepted changes.
            audited = [e.reason for e in read_audit(fresh.engine, "EWR") if e.reason.startswith("change ")]
            assert sorted(audited[-len(accepted) :]) == sorted(change["reason"] for change, _ in accepted)


def test_a_change_decided_on_a_stale_read_is_refused_naming_the_current_revision(server, kit):
    kit.serve_arms(server, [Arm("champion", "1", 1.0)])
    seen = server.client.get("/rollouts/EWR")
    assert seen.headers["ETag"] == f'"{seen.json()["revision"]}"'
    first, second = _changes(2)
    read = {**admin(kit), "If-Match": seen.headers["ETag"]}
    accepted = server.client.put("/admin/rollouts/EWR", json=first, headers=read)
    assert accepted.status_code == 200
    revision = accepted.json()["revision"]
    assert revision == seen.json()["revision"] + 1 and accepted.headers["ETag"] == f'"{revision}"'

    # The same read, sent again: someone (here the caller itself) changed the rollout since.
    put = server.client.put("/admin/rollouts/EWR", json=second, headers=read)
    rollback = server.client.post("/admin/rollouts/EWR/rollback", json={"reason": "panic"}, headers=read)
    for refused in (put, rollback):
        assert refused.status_code == 409
        assert f"is at revision {revision}, not {seen.json()['revision']}" in refused.json()["detail"]
        assert refused.headers["ETag"] == f'"{revision}"'
    assert read_rollout(server.engine, "EWR").reason == first["reason"]

    malformed = server.client.put("/admin/rollouts/EWR", json=second, headers={**admin(kit), "If-Match": 'W/"3"'})
    assert malformed.status_code == 400 and "If-Match takes the ETag" in malformed.json()["detail"]
    assert read_rollout(server.engine, "EWR").revision == revision


def test_without_a_configured_admin_token_it_is_no_credential(kit, registry, tmp_path):
    with kit.serve(kit.config(), registry, tmp_path, admin_token=None) as closed:
        response = closed.anonymous.post("/admin/rollouts/EWR/rollback", json={"reason": "x"}, headers=admin(kit))
    assert response.status_code == 401 and "malformed API key" in response.json()["detail"]


def _record(features, **extra):
    return {"features": features, **extra}


BAD_INPUTS = {
    "missing domain": ("/predict", lambda f: {"features": f[0]}, 422, "domain"),
    "unknown domain": ("/predict", lambda f: {"domain": "ZZZ", "features": f[0]}, 404, "EWR"),
    "unknown feature": ("/predict", lambda f: {"domain": "EWR", "features": {**f[0], "dep_delay": 3.0}}, 422,
                        "unknown feature 'dep_delay'"),
    "string for a number": ("/predict", lambda f: {"domain": "EWR", "features": {**f[0], "distance": "far"}}, 422,
                            "features.distance"),
    "number for a category": ("/predict", lambda f: {"domain": "EWR", "features": {"carrier": 7}}, 422,
                              "features.carrier"),
    "NaN for a number": ("/predict", lambda f: b'{"domain": "EWR", "features": {"distance": NaN}}', 422,
                         "features.distance"),
    "number out of range": ("/predict", lambda f: {"domain": "EWR", "features": {"distance": 1e20}}, 422,
                            "features.distance"),
    "both forms": ("/predict", lambda f: {"domain": "EWR", "features": f[0], "records": [_record(f[0])]}, 422,
                   "either `records`"),
    "empty batch": ("/predict", lambda f: {"domain": "EWR", "records": []}, 422, "records"),
    "too many records": ("/predict", lambda f: {"domain": "EWR", "records": [_record(f[0])] * 301}, 422,
                         "at most 300"),
    "duplicate ids": ("/predict", lambda f: {"domain": "EWR", "records": [_record(f[0], request_id="twice")] * 2},
                      422, "'twice'"),
    "extra key on a record": ("/predict", lambda f: {"domain": "EWR", "records": [_record(f[0], user="u")]}, 422,
                              "records.0.user"),
    "wrong label value": ("/feedback", lambda f: {"domain": "EWR", "labels": [{"request_id": "a", "label": 2}]},
                          422, "labels.0.label"),
    "label as boolean": ("/feedback", lambda f: {"domain": "EWR", "labels": [{"request_id": "a", "label": True}]},
                         422, "labels.0.label"),
    "no labels": ("/feedback", lambda f: {"domain": "EWR", "labels": []}, 422, "labels"),
    "event time not a date": ("/predict", lambda f: {"domain": "EWR", "features": f[0], "event_time": "soon"}, 422,
                              "event_time"),
    "batch-level event time": ("/predict", lambda f: {"domain": "EWR", "records": [_record(f[0])],
                                                      "event_time": "2013-10-02T07:30:00"}, 422, "inside each record"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_a_4xx_naming_the_field(server, features, case):
    path, body, status, named = BAD_INPUTS[case]
    payload = body(features)
    if isinstance(payload, bytes):
        response = server.client.post(path, content=payload, headers={"Content-Type": "application/json"})
    else:
        response = server.client.post(path, json=payload)
    assert response.status_code == status
    assert named in response.text


def test_a_body_that_is_not_json_is_a_422(server):
    response = server.client.post("/predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["message"]


def test_an_id_already_logged_is_a_409_naming_it(server, features):
    first = server.client.post("/predict", json={"domain": "EWR", "request_id": "used-once", "features": features[0]})
    assert first.status_code == 200
    again = server.client.post(
        "/predict",
        json={"domain": "EWR", "records": [_record(features[1]), _record(features[0], request_id="used-once")]},
    )
    assert again.status_code == 409 and "'used-once'" in again.json()["detail"]


def test_metrics_count_predictions_feedback_and_show_the_weights(server, kit, features):
    kit.serve_arms(server, [Arm("champion", "1", 0.7), Arm("canary", "2", 0.3)])
    before = _samples(server)
    request_ids = ids("metrics", 40)
    records = [{"request_id": rid, "features": features[i]} for i, rid in enumerate(request_ids)]
    server.client.post("/predict", json={"domain": "EWR", "records": records})
    server.client.post("/feedback", json={"domain": "EWR", "labels": [{"request_id": request_ids[0], "label": 1}]})
    server.client.post("/predict", json={"domain": "nowhere", "features": {}})
    after = _samples(server)

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    canary = sum(route(rid, [Arm("champion", "1", 0.7), Arm("canary", "2", 0.3)]).variant == "canary"
                 for rid in request_ids)  # fmt: skip
    assert grew("domainflow_predictions_total", domain="EWR", variant="canary", version="2") == canary
    assert grew("domainflow_predictions_total", domain="EWR", variant="champion", version="1") == 40 - canary
    assert grew("domainflow_model_latency_seconds_count", domain="EWR", variant="champion", version="1") == 1
    assert grew("domainflow_feedback_labels_total", domain="EWR", outcome="accepted") == 1
    assert grew("domainflow_rejected_requests_total", status="404") == 1
    assert after[("domainflow_rollout_weight", (("domain", "EWR"), ("variant", "canary"), ("version", "2")))] == 0.3
    assert after[("domainflow_domain_ready", (("domain", "EWR"),))] == 1


def _samples(server) -> dict:
    text = server.client.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_health_and_readiness(server):
    health = server.client.get("/health")
    assert health.status_code == 200 and health.json()["log_writer"]["state"] == "writing"
    ready = server.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["domains"]["EWR"]["ready"] is True


def _row(request_id: str) -> PredictionRecord:
    return PredictionRecord(request_id, "EWR", "champion", "1", 0.5, 1.0, 0.0)


def test_the_writer_refuses_a_claimed_id_and_keeps_a_batch_whose_id_another_process_logged(tmp_path):
    from domainflow.store.database import open_database

    engine = open_database(f"sqlite:///{tmp_path / 'log.db'}")
    writer = PredictionWriter(engine, interval=0.01)
    writer.start()
    try:
        assert writer.claim(["a", "b"]) == []
        assert writer.claim(["b", "c"]) == ["b"]  # queued or in flight: taken
        assert writer.claim(["c"]) == []
        writer.submit([_row("a"), _row("b")])
        record_predictions(engine, [_row("x")])  # another server process logs x first
        writer.submit([_row("c"), _row("x")])
        assert writer.flush()
        assert writer.claim(["a"]) == ["a"]  # now in the log
    finally:
        writer.close()
    with engine.connect() as connection:
        assert sorted(connection.execute(select(predictions.c.request_id)).scalars()) == ["a", "b", "c", "x"]


def _log_engine(tmp_path):
    from domainflow.store.database import open_database

    return open_database(f"sqlite:///{tmp_path / 'log.db'}")


def _logged(engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(select(predictions.c.request_id)).scalars())


def _move_log_table(engine, away: bool) -> None:
    """A real database error for every write, while the prediction log's table is renamed away."""
    names = ("predictions", "predictions_away") if away else ("predictions_away", "predictions")
    if names[0] in inspect(engine).get_table_names():
        with engine.begin() as connection:
            connection.exec_driver_sql(f"ALTER TABLE {names[0]} RENAME TO {names[1]}")


def test_the_writer_survives_a_database_error_while_it_retries_row_by_row(kit, tmp_path):
    """The thread died on any error other than a duplicate id in its row-by-row retry: the batch was lost
    and nothing was logged after it (issue 18)."""
    engine = _log_engine(tmp_path)
    duplicate_seen = threading.Event()

    @event.listens_for(engine, "handle_error")
    def _note_duplicate(context):
        if isinstance(context.sqlalchemy_exception, IntegrityError):
            duplicate_seen.set()

    @event.listens_for(engine, "before_cursor_execute")
    def _break_the_first_row_retry(connection, cursor, statement, parameters, context, executemany):
        if duplicate_seen.is_set() and statement.startswith("INSERT INTO predictions") and not broken.is_set():
            broken.set()
            cursor.execute("ALTER TABLE predictions RENAME TO predictions_away")

    broken = threading.Event()
    record_predictions(engine, [_row("x")])  # another server process logs x first
    writer = PredictionWriter(engine, interval=0.01)
    writer.start()
    try:
        writer.submit([_row("a"), _row("x"), _row("b")])
        kit.wait_for(lambda: writer.health().last_error is not None, "the writer to fail a write", timeout=10)
        assert "no such table: predictions" in writer.health().last_error
        _move_log_table(engine, away=False)
        assert writer.flush(timeout=10)
        assert writer.health().state == "writing" and writer.health().last_error is None
        writer.submit([_row("c")])
        assert writer.flush(timeout=10)
    finally:
        writer.close()
    assert _logged(engine) == ["a", "b", "c", "x"]


def test_a_claim_whose_database_check_fails_gives_its_ids_back(tmp_path):
    """After one database error a retry with the same id got 409 until restart (issue 18)."""
    engine = _log_engine(tmp_path)
    writer = PredictionWriter(engine)
    _move_log_table(engine, away=True)
    with pytest.raises(OperationalError):
        writer.claim(["a"])
    _move_log_table(engine, away=False)
    assert writer.claim(["a"]) == []  # free again: the failed request reserved nothing


def test_a_request_that_finds_the_database_unreachable_gets_a_503_to_retry_not_a_fault(server, features, monkeypatch):
    """Answered as an unexpected fault, each such request logged a traceback and uvicorn closed its keep-alive
    connection, so a client's next request could be reset (found by the kill test, issue 18)."""

    def unreachable(ids):
        raise OperationalError("SELECT", {}, ConnectionRefusedError("connection to server failed: refused"))

    before = _samples(server)
    monkeypatch.setattr(server.app.state.serving.writer, "claim", unreachable)
    response = server.client.post("/predict", json={"domain": "EWR", "request_id": "db-down-1",
                                                    "features": features[0]})  # fmt: skip
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json() == {"detail": "the database is unreachable; retry later"}
    after = _samples(server)
    assert (
        after[("domainflow_rejected_requests_total", (("status", "503"),))]
        == before.get(("domainflow_rejected_requests_total", (("status", "503"),)), 0) + 1
    )
    assert after[("domainflow_server_errors_total", ())] == before[("domainflow_server_errors_total", ())]


def test_the_backlog_is_capped_when_rows_are_queued_not_only_after_a_failed_write(tmp_path):
    dropped = []
    writer = PredictionWriter(_log_engine(tmp_path), max_backlog=3, on_dropped=dropped.append)
    writer.submit([_row(f"r{i}") for i in range(5)])
    assert writer.backlog == 3 and dropped == [2]  # the two oldest, counted as unlogged


def test_health_says_when_the_writer_is_stalled_or_stopped(kit, tmp_path):
    engine = _log_engine(tmp_path)
    writer = PredictionWriter(engine, interval=0.01, stall_seconds=0.3)
    assert writer.health().state == "stopped"  # not started
    writer.start()
    try:
        _move_log_table(engine, away=True)
        writer.submit([_row("a")])
        kit.wait_for(lambda: writer.health().state == "stalled", "the writer to stall", timeout=10)
        assert writer.health().backlog == 1
        _move_log_table(engine, away=False)
        assert writer.flush(timeout=10) and writer.health().state == "writing"
    finally:
        writer.close()
    assert writer.health().state == "stopped" and _logged(engine) == ["a"]


def test_rows_in_a_hanging_write_count_as_backlog_and_the_writer_shows_stalled(kit, tmp_path):
    """The rows of a write the database holds were in no count: /health said "writing" with a backlog of 0
    for as long as the statement hung (found by the kill test, issue 18)."""
    engine = _log_engine(tmp_path)
    release = threading.Event()

    @event.listens_for(engine, "before_cursor_execute")
    def _hang(connection, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO predictions"):
            release.wait(10)

    writer = PredictionWriter(engine, interval=0.01, stall_seconds=0.3)
    writer.start()
    try:
        writer.submit([_row("a"), _row("b")])
        kit.wait_for(lambda: writer.health().state == "stalled", "the writer to show stalled", timeout=5)
        assert writer.health().backlog == writer.backlog == 2
        release.set()
        assert writer.flush(timeout=10)
        assert writer.health().state == "writing" and writer.backlog == 0
    finally:
        release.set()
        writer.close()
    assert _logged(engine) == ["a", "b"]


def test_a_body_over_the_limit_is_refused_before_it_is_read(server, features):
    """FastAPI parsed the whole body (about 4x its size in memory) before the batch limit applied (issue 18)."""
    limit = server.config.serving.max_body_bytes
    records = [{"features": features[0]}] * (limit // len(json.dumps({"features": features[0]})) + 10)
    body = json.dumps({"domain": "EWR", "records": records}).encode()
    assert len(body) > limit
    declared = server.client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "serving.max_body_bytes" in declared.json()["detail"]

    def chunks():  # no Content-Length: sent chunked, so only counting the bytes can stop it
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    streamed = server.client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "serving.max_body_bytes" in streamed.json()["detail"]
    # The server carries on, and a body within the limit is answered.
    within = server.client.post("/predict", json={"domain": "EWR", "features": features[0]})
    assert within.status_code == 200
    assert _samples(server)[("domainflow_rejected_requests_total", (("status", "413"),))] >= 2
