"""The kill test (issue 18): PostgreSQL gone for 30 s under load, then back.

Every prediction answered 200 must be in the log afterwards, or counted as unlogged
(`domainflow_prediction_log_dropped_total`); `/health` must answer throughout. The shared
PostgreSQL is never stopped: the server reaches its database through a TCP proxy written
here, which the test cuts (every connection closed, new ones refused) and restores.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from sqlalchemy import create_engine, make_url, select

from domainflow.access.keys import PREDICTOR, create_key
from domainflow.config import build_config
from domainflow.registry.integrity import register_model_version
from domainflow.registry.mlflow_registry import CHAMPION, LoggedRun, fluent_tracking_uri
from domainflow.serving.app import create_app
from domainflow.serving.server import serve_in_background
from domainflow.settings import Settings
from domainflow.store.database import _with_installed_driver, open_database
from domainflow.store.schema import predictions

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30.0
# Small enough that the outage overflows it, so the counted drops are checked as well as the written rows.
MAX_BACKLOG = 200
# An answer slower than this counts as a hang: far below the database's connect (10 s) and pool (30 s) timeouts
# that a /health waiting on the database would show, and above what a busy two-core machine adds.
HEALTH_TIMEOUT = 5.0
PREDICT_TIMEOUT = 20.0  # longer than the database's connect timeout (10 s): a slow 5xx is an answer, not a hang

# A registered model that answers without work: the test is about the log, not the scores.
CONSTANT_MODEL = """
import mlflow
import numpy as np


class ConstantModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return np.full(len(model_input), 0.25)


mlflow.models.set_model(ConstantModel())
"""


def client_headers(database_url: str) -> dict[str, str]:
    """A predictor's key for /predict, made in the server's database (before the outage)."""
    token = create_key(open_database(database_url), PREDICTOR, ["EWR"], "outage load", "pytest").token
    return {"Authorization": f"Bearer {token}"}


class CuttableProxy:
    """A TCP forwarder to PostgreSQL that can play its outage: `cut()` drops every connection and refuses new
    ones (the listening port is closed, as a stopped server's is); `restore()` listens on the same port again."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listen(0)
        self.port = self._listener.getsockname()[1]

    def _listen(self, port: int) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(64)
        self._acceptor = threading.Thread(target=self._accept, args=(self._listener,), name="proxy-accept", daemon=True)
        self._acceptor.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # the listener was shut down: cut() or close()
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
            threading.Thread(target=self._forward, args=(client, server), name="proxy-forward", daemon=True).start()

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        """One thread per connection, the only one that closes its sockets: a socket closed while another
        thread still sends on it could send into whatever connection reused its file descriptor."""
        peer = {client: server, server: client}
        try:
            with selectors.DefaultSelector() as selector:
                for sock in peer:
                    selector.register(sock, selectors.EVENT_READ)
                while True:
                    for key, _ in selector.select():
                        data = key.fileobj.recv(65536)
                        if not data:
                            return
                        peer[key.fileobj].sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets -= {client, server}
                client.close()
                server.close()

    def cut(self) -> None:
        # A blocked accept() outlives close() on Linux (and would take one more connection); shutdown() ends it.
        self._listener.shutdown(socket.SHUT_RDWR)
        self._acceptor.join()
        self._listener.close()
        with self._lock:  # shut down, not closed: each forwarding thread then closes its own
            for sock in self._sockets:
                with contextlib.suppress(OSError):  # already closed by its peer
                    sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self._listen(self.port)

    def close(self) -> None:
        self.cut()


@dataclass
class Traffic:
    """What the clients saw: each /predict answer and each /health answer (or failure) with its time."""

    answered: dict[str, float] = field(default_factory=dict)  # request id answered 200 -> when
    predict_statuses: list[tuple[float, int]] = field(default_factory=list)
    predict_failures: list[str] = field(default_factory=list)
    health: list[tuple[float, int, float]] = field(default_factory=list)  # (when, status, seconds taken)
    health_failures: list[str] = field(default_factory=list)


def send_predictions(url: str, traffic: Traffic, stop: threading.Event, headers: dict[str, str]) -> None:
    """Batches of 5 records, half with the client's request ids (the server checks those against the log)
    and half without (the server makes them, no database call in the request)."""
    with httpx.Client(base_url=url, headers=headers, timeout=PREDICT_TIMEOUT) as client:
        batch = 0
        while not stop.is_set():
            batch += 1
            given = batch % 2 == 0
            records = [
                {"features": {}, **({"request_id": f"outage-{uuid.uuid4().hex}"} if given else {})} for _ in range(5)
            ]
            try:
                response = client.post("/predict", json={"domain": "EWR", "records": records})
            except httpx.HTTPError as error:
                traffic.predict_failures.append(f"{type(error).__name__}: {error}")
                continue
            now = time.monotonic()
            traffic.predict_statuses.append((now, response.status_code))
            if response.status_code == 200:
                traffic.answered |= {p["request_id"]: now for p in response.json()["predictions"]}
            time.sleep(0.01)


def poll_health(url: str, traffic: Traffic, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=HEALTH_TIMEOUT) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = client.get("/health").status_code
            except httpx.HTTPError as error:
                traffic.health_failures.append(f"{type(error).__name__} after {time.monotonic() - started:.1f} s")
            else:
                traffic.health.append((started, status, time.monotonic() - started))
            time.sleep(0.2)


def wait_for(condition, what: str, timeout: float):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)
    return value


def dropped_count(client: httpx.Client) -> float:
    metrics = client.get("/metrics").text
    return float(re.search(r"(?m)^domainflow_prediction_log_dropped_total (\S+)$", metrics).group(1))


@pytest.fixture
def registry(tmp_path):
    """A SQLite MLflow store with `flight-delay-EWR` v1 (CONSTANT_MODEL) as champion, registered with its digest."""
    tracking_uri, artifact_root = f"sqlite:///{tmp_path}/mlflow.db", (tmp_path / "artifacts").as_uri()
    code = tmp_path / "constant_model.py"
    code.write_text(CONSTANT_MODEL)
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("outage", artifact_location=f"{artifact_root}/outage")
    with fluent_tracking_uri(tracking_uri), mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code), pip_requirements=[])
    version = register_model_version(tracking_uri, "flight-delay-EWR", LoggedRun(run.info.run_id, info.model_uri,
                                                                                 reused=False), tags={})  # fmt: skip
    client.set_registered_model_alias("flight-delay-EWR", CHAMPION, version)
    return tracking_uri, artifact_root


@pytest.fixture
def proxy():
    running = CuttableProxy(("127.0.0.1", 5432))
    yield running
    running.close()


def test_a_30_s_database_outage_under_load_loses_no_answered_prediction_uncounted(
    postgres_database, registry, proxy, tmp_path
):
    direct = make_url(postgres_database)
    through_proxy = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    tracking_uri, artifact_root = registry
    config = build_config({"domains": {"values": ["EWR"]}, "serving": {"refresh_seconds": 1.0}})
    settings = Settings(home=tmp_path, tracking_uri=tracking_uri, artifact_root=artifact_root,
                        database_url=through_proxy)  # fmt: skip
    app = create_app(config, settings)
    traffic, stop = Traffic(), threading.Event()

    headers = client_headers(through_proxy)
    with serve_in_background(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/ready").status_code == 200, "the champion to load", 60)
        app.state.serving.writer.max_backlog = MAX_BACKLOG
        clients = [threading.Thread(target=send_predictions, args=(url, traffic, stop, headers), daemon=True),
                   threading.Thread(target=poll_health, args=(url, traffic, stop), daemon=True)]  # fmt: skip
        for thread in clients:
            thread.start()
        time.sleep(3)
        cut_at = time.monotonic()
        proxy.cut()
        time.sleep(OUTAGE_SECONDS)
        proxy.restore()
        restored_at = time.monotonic()
        time.sleep(3)
        stop.set()
        for thread in clients:
            thread.join(PREDICT_TIMEOUT + 5)

        # The writer catches up once the database is back: nothing waits, and nothing more is dropped.
        backlog = lambda: client.get("/health").json()["log_writer"]["backlog"]  # noqa: E731
        wait_for(lambda: backlog() == 0, "the prediction log's backlog to drain", 60)
        dropped = dropped_count(client)
        health_after = client.get("/health")

    engine = create_engine(_with_installed_driver(postgres_database))
    with engine.connect() as connection:
        logged = set(connection.execute(select(predictions.c.request_id)).scalars())
    engine.dispose()

    # /health answered every poll, quickly, all along: 200 while the writer lives (503 only if it stopped).
    assert traffic.health_failures == [], f"/health failed {len(traffic.health_failures)} of {len(traffic.health)}"
    during = [(status, seconds) for when, status, seconds in traffic.health if cut_at <= when <= restored_at]
    assert len(during) > OUTAGE_SECONDS  # polled every 0.2 s: a blocked /health would show as a gap
    assert {status for _, status, _ in traffic.health} <= {200, 503}
    assert health_after.status_code == 200 and health_after.json()["log_writer"]["state"] == "writing"
    # /predict always answered too: a 5xx while the database is away is an answer, a hang is not.
    assert traffic.predict_failures == [], f"{len(traffic.predict_failures)} /predict requests got no answer"
    answered_during = {rid for rid, when in traffic.answered.items() if cut_at <= when <= restored_at}
    assert answered_during, "no prediction was answered during the outage: the test proved nothing"

    # Every answered prediction is in the log, or was counted as dropped (the oldest beyond the backlog cap).
    missing = set(traffic.answered) - logged
    assert len(missing) == dropped, f"{len(missing)} answered predictions are not in the log, {dropped:g} counted"
    # Only rows queued while the database was away may be dropped (the oldest first).
    assert all(traffic.answered[rid] >= cut_at - 1.0 for rid in missing)
