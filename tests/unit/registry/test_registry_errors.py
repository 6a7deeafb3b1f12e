"""A registry that fails or crawls: decisions stop instead of reading "no champion", and writers never interleave.

A real MLflow tracking server (`mlflow server` on a SQLite file) sits behind a proxy in this
process that answers 502 Bad Gateway for the requests a test chooses, as a load balancer in
front of a restarting server does, or holds them back for a while, as an overloaded one
does. The versions are registered and the aliases read directly from the server; the code
under test goes through the proxy.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from mlflow import MlflowClient

from domainflow.canary.controller import Clock, PromotionError, run_promotion
from domainflow.config import CanaryConfig
from domainflow.registry.aliases import PREVIOUS_CHAMPION, apply_gate_verdict, move_alias, pending_challenger, promote
from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import CHALLENGER, CHAMPION, RegistryUnavailable
from domainflow.store import locks
from domainflow.store.audit import read_audit
from domainflow.store.database import open_database
from domainflow.store.promotions import read_promotion
from domainflow.store.rollouts import CHAMPION_ARM, Arm, read_rollout, set_rollout

pytestmark = pytest.mark.slow

ALIAS_READ = ("GET", "/registered-models/alias")


class FlakyProxy(ThreadingHTTPServer):
    """Forwards to `upstream`; a request for which `failing(method, path)` is true gets a 502 instead.

    `delay(method, path)` seconds pass before a request is forwarded.
    """

    daemon_threads = True

    def __init__(self, upstream: str):
        self.upstream = upstream.removeprefix("http://")
        self.failing: Callable[[str, str], bool] = lambda method, path: False
        self.delay: Callable[[str, str], float] = lambda method, path: 0.0
        self.refused: list[str] = []
        super().__init__(("127.0.0.1", 0), _Forward)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    def _forward(self):
        proxy: FlakyProxy = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(proxy.delay(self.command, self.path))
        if proxy.failing(self.command, self.path):
            proxy.refused.append(f"{self.command} {self.path}")
            self.send_response(502)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "11")
            self.end_headers()
            self.wfile.write(b"Bad Gateway")
            return
        upstream = http.client.HTTPConnection(proxy.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body=body or None, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    do_GET = do_POST = do_PATCH = do_DELETE = _forward

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on a SQLite file, on a free port; its URL."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with FlakyProxy("127.0.0.1:1") as probe:  # any free port: bind one, release it
        port = probe.server_address[1]
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
               "--default-artifact-root", (folder / "artifacts").as_uri(), "--workers", "1"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("mlflow server did not start within 120 s")
        time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def proxy(mlflow_server, monkeypatch):
    # MLflow retries a 502 with backoff for minutes by default; the first answer is the one under test.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = FlakyProxy(mlflow_server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def domain(request, mlflow_server, proxy, tmp_path):
    """A fresh registered model with v1 champion and v2 registered; its DomainModel through the proxy."""
    name = f"flight-delay-{request.node.name[:40]}"
    direct = MlflowClient(mlflow_server)
    direct.create_registered_model(name)
    for _ in range(2):
        direct.create_model_version(name, "s3://models/weights")  # a source the server does not read
    direct.set_registered_model_alias(name, CHAMPION, "1")
    engine = open_database(f"sqlite:///{tmp_path}/serving.db")
    return DomainModel(domain="EWR", name=name, tracking_uri=proxy.url, engine=engine)


def _aliases(mlflow_server: str, name: str) -> dict[str, str]:
    model = MlflowClient(mlflow_server).get_registered_model(name)
    return {alias: str(version) for alias, version in model.aliases.items()}


def _reads_of(method_path: tuple[str, str]) -> Callable[[str, str], bool]:
    method, path = method_path
    return lambda m, p: m == method and path in p


def test_a_failed_alias_read_stops_the_gate_instead_of_crowning_the_version(domain, proxy, mlflow_server):
    proxy.failing = _reads_of(ALIAS_READ)

    with pytest.raises(RegistryUnavailable) as raised:
        apply_gate_verdict(domain, "2", passed=True, reason="all checks passed")

    assert "failed while reading the 'challenger' alias" in str(raised.value) and "502" in str(raised.value)
    assert proxy.refused, "the proxy was not asked"
    assert _aliases(mlflow_server, domain.name) == {CHAMPION: "1"}
    assert read_audit(domain.engine, "EWR") == []


def test_a_failed_alias_read_stops_a_promotion_and_keeps_previous_champion(domain, proxy, mlflow_server):
    proxy.failing = _reads_of(ALIAS_READ)

    with pytest.raises(RegistryUnavailable, match="reading the 'champion' alias"):
        promote(domain, "2", "canary passed", "test")

    assert _aliases(mlflow_server, domain.name) == {CHAMPION: "1"}
    assert PREVIOUS_CHAMPION not in _aliases(mlflow_server, domain.name)


def test_an_unreachable_registry_is_not_a_missing_challenger(domain, proxy, mlflow_server):
    MlflowClient(mlflow_server).set_registered_model_alias(domain.name, CHALLENGER, "2")
    assert pending_challenger(proxy.url, domain.name) == ("2", "1")
    proxy.failing = lambda method, path: True

    with pytest.raises(RegistryUnavailable, match="502"):
        pending_challenger(proxy.url, domain.name)


def test_a_canary_whose_registry_fails_mid_way_moves_no_alias_and_no_weight(domain, proxy, mlflow_server):
    """The registry goes away after the canary's last step was decided: the version is not made champion."""
    set_rollout(domain.engine, "EWR", domain.name, [Arm(CHAMPION_ARM, "1", 1.0)], "serving", "test")
    plan = CanaryConfig(steps=[{"weight": 0.5, "min_bake_seconds": 0, "min_samples": 0},
                               {"weight": 1.0, "min_bake_seconds": 0, "min_samples": 0}],
                        poll_seconds=0.01)  # fmt: skip

    def registry_down_after_the_first_step(state, decision):
        if decision.action == "advance":
            proxy.failing = lambda method, path: True

    with pytest.raises(RegistryUnavailable):
        run_promotion(domain, "2", plan, "test", Clock(), on_decision=registry_down_after_the_first_step)

    assert _aliases(mlflow_server, domain.name) == {CHAMPION: "1", "canary": "2"}
    # The traffic is where the canary's last decided step put it, not handed to v2 as champion.
    arms = [(arm.variant, arm.version, arm.weight) for arm in read_rollout(domain.engine, "EWR").arms]
    assert arms == [(CHAMPION_ARM, "1", 0.0), ("canary", "2", 1.0)]
    promotion = read_promotion(domain.engine, "EWR")
    assert promotion is not None and not promotion.settled

    # Once the registry answers again, running it again finishes what was decided.
    proxy.failing = lambda method, path: False
    finished = run_promotion(domain, "2", plan, "test", Clock())
    assert finished.settled and _aliases(mlflow_server, domain.name) == {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}


def test_a_registry_error_reading_the_version_is_not_a_missing_version(domain, proxy):
    proxy.failing = _reads_of(("GET", "/model-versions/get"))

    with pytest.raises(RegistryUnavailable, match="reading flight-delay-.* v2"):
        run_promotion(domain, "2", CanaryConfig(), "test", Clock())
    with pytest.raises(PromotionError, match="has no version 9"):
        proxy.failing = lambda method, path: False
        run_promotion(domain, "9", CanaryConfig(), "test", Clock())


def test_a_slow_registry_keeps_the_lock_renewed_so_a_second_promotion_waits(domain, proxy, mlflow_server, monkeypatch):
    """Each alias write takes three leases' time; a second writer arriving mid-way waits, never interleaves."""
    monkeypatch.setattr(locks, "LEASE_SECONDS", 0.5)
    proxy.delay = lambda method, path: 1.5 if method == "POST" and "/registered-models/alias" in path else 0.0
    first = threading.Thread(target=promote, args=(domain, "2", "canary passed", "writer-a"))
    first.start()
    time.sleep(0.3)  # writer-a holds the lock and waits on its first alias write
    MlflowClient(mlflow_server).create_model_version(domain.name, "s3://models/weights")  # v3
    promote(domain, "3", "canary passed", "writer-b")
    first.join()

    actors = [entry.actor for entry in read_audit(domain.engine, "EWR")]
    assert actors == ["writer-a"] * 2 + ["writer-b"] * 2, actors
    assert _aliases(mlflow_server, domain.name) == {CHAMPION: "3", PREVIOUS_CHAMPION: "2"}


def test_a_writer_whose_lock_was_taken_over_moves_nothing(domain, mlflow_server):
    with locks.domain_lock(domain.engine, "EWR", "writer-a") as lease:
        with domain.engine.begin() as connection:  # its lease ran out and another writer took the row
            connection.execute(locks.registry_locks.update().values(holder="writer-b on another host"))
        with pytest.raises(locks.LockLost, match="lost the lock of EWR"):
            move_alias(domain, CHALLENGER, "2", "gate passed", "writer-a", lease=lease)

    assert _aliases(mlflow_server, domain.name) == {CHAMPION: "1"}
    assert read_audit(domain.engine, "EWR") == []
