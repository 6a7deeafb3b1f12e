"""A real local Prefect server (`prefect server start`) for tests that need its event services.

The in-process `prefect_test_harness` (tests/conftest.py) is enough for running flows; triggers are
different: an event reaches a deployment only through the server's ReactiveTriggers and Actions services
(both controlled by PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED), so these tests start the real command.

Import the fixture into a test module:  from .prefect_server import prefect_server  # noqa: F401
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT_S = 90

# The services a trigger needs stay on; the rest only cost CPU here (the scheduler would also
# create runs of the scheduled deployments that the tests do not look at).
SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "true",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "true",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prefect_command() -> list[str]:
    """The `prefect` CLI of the interpreter running the tests (the venv's, not one on PATH)."""
    script = Path(sys.executable).with_name("prefect")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "prefect"]


def client_env(api_url: str, home: Path) -> dict[str, str]:
    """The environment for a client subprocess (e.g. `prefect deploy`) talking to the server."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    return {**env, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), "DO_NOT_TRACK": "true",
            "PREFECT_CLI_PROMPT": "false", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip


def _wait_for_health(api_url: str, process: subprocess.Popen, timeout_s: float) -> str | None:
    """None once /api/health answers; otherwise why not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"`prefect server start` exited with code {process.returncode}"
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return None
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return f"no answer from {api_url}/health within {timeout_s:.0f} s"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory) -> Iterator[str]:
    """The API URL of a fresh `prefect server start` (own PREFECT_HOME, SQLite), for one test module.

    While the module runs, this process's Prefect clients (get_client, emit_event, flow runs) talk
    to it; subprocesses get its URL from `client_env`. Where the server does not answer within
    STARTUP_TIMEOUT_S the tests skip, with its output as the reason (in CI, CI=true, they fail).
    """
    root = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(SERVER_ENV)
    env["PREFECT_HOME"] = str(root / "home")
    env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{root / 'prefect.db'}"
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*prefect_command(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root,
        )  # fmt: skip
    try:
        problem = _wait_for_health(api_url, process, STARTUP_TIMEOUT_S)
        if problem:
            message = f"the local Prefect server did not start: {problem}; its output:\n{log_path.read_text()[-2000:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        with _clients_use(api_url):
            yield api_url
    finally:
        _stop(process)


@contextmanager
def _clients_use(api_url: str) -> Iterator[None]:
    """This process's Prefect clients talk to `api_url`, as prefect_test_harness arranges for its server.

    The global settings context is replaced too, so the events and log workers' threads see the URL.
    Those workers are drained on both sides: one built for another API (e.g. the harness that the
    flow tests keep for the session) must not carry on sending there, nor one of ours here afterwards.
    """
    import prefect.context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    global_settings = prefect.context._temporary_global_settings_context
    EventsWorker.drain_all()
    APILogWorker.drain_all()
    with temporary_settings({PREFECT_API_URL: api_url}), global_settings(prefect.context.get_settings_context()):
        try:
            yield
        finally:
            EventsWorker.drain_all()
            APILogWorker.drain_all()
