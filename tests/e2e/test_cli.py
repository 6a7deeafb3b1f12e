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


def _run(args: list[str], home: Path, timeout: int = 600, columns: int = 160) -> subprocess.CompletedProcess:
    """The command's output as a pipe gets it (`domainflow run | tee`): no terminal, `columns` wide."""
    env = {
        **os.environ,
        "DOMAINFLOW_HOME": str(home),
        "PREFECT_HOME": str(SESSION_DIR / "prefect-home"),
        "COLUMNS": str(columns),
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
    # Its server needed keys: the run made its replay client's two, and revoked them when it ended.
    keys = _run(["keys", "list"], tmp_path / "home", columns=200)
    assert keys.returncode == 0, keys.stderr
    replay = [line for line in keys.stdout.splitlines() if ": replay " in line]
    assert len(replay) == 2 and all("revoked" in line for line in replay), keys.stdout
    assert all(any(role in line for line in replay) for role in ("predictor", "labeller"))

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


def test_a_domain_without_a_champion_sits_out_and_the_summary_says_why_at_80_columns(flights_sample_csv, tmp_path):
    """JFK's delays are coin flips here: its first model fails a log-loss ceiling that EWR's meets, so JFK has
    no champion. EWR is served, replayed and monitored all the same; the summary names both, every cell whole."""
    import numpy as np
    import pandas as pd

    flights = pd.read_csv(flights_sample_csv)
    jfk = flights["origin"] == "JFK"
    flights.loc[jfk, "arr_delay"] = np.random.default_rng(0).choice([0.0, 60.0], size=jfk.sum())
    data = tmp_path / "noisy_jfk.csv"
    flights.to_csv(data, index=False)
    overrides = tiny_overrides(data)
    overrides["gate"]["max_test_log_loss"] = 0.65
    # What sits out is the question here, not retraining (tests/flows/test_loop.py): no scheduled retrain of EWR.
    overrides.setdefault("monitoring", {})["retrain_after_days"] = None
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(overrides))

    result = _run(["run", "--config", str(config)], tmp_path / "home", columns=80)

    # A domain without a champion fails the run, after everything else has run and been reported.
    assert result.returncode == 1, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "…" not in output
    words = " ".join(result.stdout.split())
    assert "flight-delay-EWR" in words and "flight-delay-JFK" in words
    assert "rejected vs baseline (HistGradientBoosting): failed max_test_log_loss (test_log_loss 0." in words
    assert "needs <= 0.6500) no champion: not served" in words
    assert "1 of 2 domains have no champion to serve: JFK" in words
    # EWR carried on: its champion served the replayed months and monitoring judged them.
    assert "EWR timeline: trained v1 (registered) → v1 champion → monitoring:" in words
    assert "JFK timeline" not in words

    status = _run(["status", "--config", str(config)], tmp_path / "home", timeout=120, columns=80)
    assert status.returncode == 0, status.stderr
    assert "…" not in status.stdout
    words = " ".join(status.stdout.split())
    assert "no champion: not served" in words and "failed max_test_log_loss (test_log_loss 0." in words

    # Training JFK alone says the same (from the cache), and its exit status says the gates rejected it.
    train = _run(["train", "JFK", "--config", str(config)], tmp_path / "home", timeout=300, columns=80)
    assert train.returncode == 1, train.stderr[-3000:]
    assert "JFK v1 rejected by the gates" in " ".join((train.stdout + train.stderr).split())


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
