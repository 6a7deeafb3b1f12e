"""The installed `domainflow` command, run as a user would: a fresh home, Prefect's ephemeral API.

Each test gets a fresh DOMAINFLOW_HOME; the Prefect home (the ephemeral API's database) is one per
test process, as a user's ~/.prefect is one for all their projects: building it anew costs each
command about five seconds of Prefect's database migrations.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import SESSION_DIR, tiny_overrides

CLI = [sys.executable, "-m", "domainflow.cli"]


def _run(args: list[str], home: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DOMAINFLOW_HOME": str(home),
        "PREFECT_HOME": str(SESSION_DIR / "prefect-home"),
        "COLUMNS": "160",
    }
    for inherited in ("PREFECT_API_URL", "PREFECT_RESULTS_LOCAL_STORAGE_PATH", "MLFLOW_TRACKING_URI"):
        env.pop(inherited, None)
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tiny_config_file(flights_sample_csv, tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_overrides(flights_sample_csv)))
    return path


def test_run_trains_registers_and_prints_the_summary(tiny_config_file, tmp_path):
    result = _run(["run", "--no-loop", "--config", str(tiny_config_file)], tmp_path / "home")

    assert result.returncode == 0, result.stderr[-3000:]
    for expected in ("EWR", "JFK", "flight-delay-EWR", "champion", "challenger", "1,500"):
        assert expected in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert (tmp_path / "home" / "mlflow.db").exists()

    # The run served its models: each domain's first version is champion, so no canary ran.
    assert "no challenger" in result.stdout

    status = _run(["status", "--config", str(tiny_config_file)], tmp_path / "home")
    assert status.returncode == 0, status.stderr
    assert "flight-delay-JFK" in status.stdout and "champion=v1" in status.stdout

    promote = _run(["promote", "EWR", "--config", str(tiny_config_file)], tmp_path / "home", timeout=300)
    assert promote.returncode == 0, promote.stderr[-3000:]
    assert "nothing_to_promote" in promote.stdout and "no challenger distinct from the champion" in promote.stdout


def test_serving_needs_the_domains_listed(tmp_path):
    config = tmp_path / "all-domains.yaml"
    config.write_text("domains:\n  values: null\n")

    for command in (["run", "--config", str(config)], ["serve", "--config", str(config)]):
        result = _run(command, tmp_path / "home", timeout=120)
        assert result.returncode == 2, result.stderr
        assert "serving needs the domains listed in domains.values" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-epochs", "0"], "Invalid value for '--max-epochs'"),
        (["--source", "/nonexistent/flights.csv"], "/nonexistent/flights.csv: no such file"),
        (["--source", "builtin://nothing"], "unknown builtin dataset"),
        (["--domains", ","], "--domains needs at least one value"),
    ],
)
def test_bad_flags_end_in_one_clear_message(args, message, tmp_path):
    result = _run(["run", *args], tmp_path / "home", timeout=120)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_monitoring_a_home_with_nothing_served_says_so(tiny_config_file, tmp_path):
    result = _run(["monitor", "--config", str(tiny_config_file)], tmp_path / "home", timeout=300)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "EWR: monitoring: not served (the domain has no champion)" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_serving_the_flows_needs_a_prefect_server(tmp_path):
    result = _run(["serve-flows"], tmp_path / "home", timeout=120)

    assert result.returncode == 2
    assert "serve-flows needs a Prefect server" in result.stderr and "PREFECT_API_URL" in result.stderr


def test_a_bad_config_file_names_the_field(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("training:\n  max_epochs: -1\ndata:\n  numeric_features: [dep_delay]\n")

    result = _run(["run", "--config", str(config)], tmp_path / "home", timeout=120)

    assert result.returncode == 2
    assert "dep_delay" in result.stderr and "leaking_columns" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failing_domain_is_reported_without_a_traceback(flights_sample_csv, tmp_path):
    import pandas as pd

    data = tmp_path / "no_dest.csv"
    pd.read_csv(flights_sample_csv).drop(columns=["dest"]).to_csv(data, index=False)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(tiny_overrides(data)))

    result = _run(["run", "--config", str(config)], tmp_path / "home")

    assert result.returncode == 1
    assert "lacks the columns ['dest']" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["--versions", "control=1"], "", "--versions takes variant=version pairs"),
        (["--versions", "control=1,b=2"], "", "has no version '1'"),
        (["--versions", "control=1,b=2"], "experiment:\n  split: {control: 0.5, b: 0.4}\n", "must sum to 1"),
    ],
)
def test_an_experiment_that_cannot_start_says_why(args, config, message, tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_text(config or "{}\n")
    result = _run(["experiment", "start", "EWR", "--config", str(path), *args], tmp_path / "home", timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
