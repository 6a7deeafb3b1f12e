from __future__ import annotations

from pathlib import Path

from domainflow.settings import quiet_environment, resolve_settings


def test_everything_defaults_under_home(tmp_path):
    settings = resolve_settings({"DOMAINFLOW_HOME": str(tmp_path / "home")})
    home = (tmp_path / "home").resolve()
    assert settings.home == home
    assert settings.tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    assert settings.artifact_root == (home / "mlartifacts").as_uri()
    assert settings.quarantine_root == f"{home}/quarantine"
    assert settings.results_dir == home / "prefect-results"
    assert settings.checkpoint_dir == home / "checkpoints"


def test_quarantined_rows_can_go_to_a_bucket(tmp_path):
    settings = resolve_settings({"DOMAINFLOW_HOME": str(tmp_path), "DOMAINFLOW_OUTPUT_ROOT": "s3://data/outputs/"})
    assert settings.quarantine_root == "s3://data/outputs/quarantine"


def test_home_defaults_to_dot_domainflow_in_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = resolve_settings({})
    assert settings.home == Path(tmp_path).resolve() / ".domainflow"


def test_standard_variables_override_tracking_and_artifacts(tmp_path):
    env = {
        "DOMAINFLOW_HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": "postgresql://mlflow@db/mlflow",
        "DOMAINFLOW_ARTIFACT_ROOT": "s3://bucket/artifacts",
    }
    settings = resolve_settings(env)
    assert settings.tracking_uri == "postgresql://mlflow@db/mlflow"
    assert settings.artifact_root == "s3://bucket/artifacts"
    assert settings.quarantine_root == f"{tmp_path.resolve()}/quarantine"


def test_empty_tracking_uri_falls_back_to_sqlite(tmp_path):
    settings = resolve_settings({"DOMAINFLOW_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": ""})
    assert settings.tracking_uri.startswith("sqlite:///")


def test_quiet_environment_sets_defaults_but_user_values_win(tmp_path):
    settings = resolve_settings({"DOMAINFLOW_HOME": str(tmp_path)})
    env = {"MLFLOW_DISABLE_TELEMETRY": "false"}
    quiet_environment(settings, env)
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "false"
    assert env["DO_NOT_TRACK"] == "true"
    assert env["GX_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] == str(settings.results_dir)
