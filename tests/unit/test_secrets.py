"""No credential in the repository, and none shown where a URL that may carry one is shown.

The repository scan reads every file `git ls-files` lists and looks for AWS access key ids,
private keys, and URLs with an inline password (scheme://user:password@host). The allowlist
is one rule, the same for every file: a password that is visibly not a real one may stay.
That is a template (`${POSTGRES_PASSWORD:?...}` in compose, `{password}` in an f-string,
`$VAR`), a `<placeholder>`, a `CHANGE-ME...` value, or one of the words in PLACEHOLDERS
(docs write `user:password@host`; tests use throwaway values such as `tuner:secret@127.0.0.1`
or moto's `testing`, never a real server's). AWS's documented example key (…EXAMPLE) is
allowed too. Private keys have no exception.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from domainflow.redaction import without_passwords
from domainflow.settings import SettingsError, resolve_settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret"
SECRET_URL = f"postgresql+psycopg://user:{PASSWORD}@host/db"

PLACEHOLDERS = {"password", "pass", "passwd", "secret", PASSWORD, "testing", "changeme", "***", "xxx"}
AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
URL_PASSWORD = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"`]*:([^\s@'\"`]+)@")


def _is_placeholder(password: str) -> bool:
    return (
        password.lower() in PLACEHOLDERS
        or password.upper().startswith("CHANGE-ME")
        or "$" in password  # ${VAR}, $VAR
        or "{" in password  # an f-string or format template
        or (password.startswith("<") and password.endswith(">"))
    )


def find_credentials(text: str) -> list[str]:
    """What looks like a real credential in `text`, each named by its kind."""
    found = [f"AWS access key id {m}" for m in AWS_KEY_ID.findall(text) if not m.endswith("EXAMPLE")]
    found += ["a private key" for _ in PRIVATE_KEY.findall(text)]
    found += [f"a URL with the password {p[:2]}…" for p in URL_PASSWORD.findall(text) if not _is_placeholder(p)]
    return found


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True)
    return [ROOT / name for name in listed.stdout.split("\0") if name]


def test_no_tracked_file_holds_a_credential():
    leaks = []
    for path in tracked_files():
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        leaks += [f"{path.relative_to(ROOT)}: {what}" for what in find_credentials(data.decode("utf-8", "replace"))]
    assert leaks == [], "move these to the environment (infra/README.md, 'Where secrets come from')"


@pytest.mark.parametrize(
    "text",
    [
        "key = 'AKIA" + "Z7Q2" * 4 + "'",
        "-----BEGIN RSA PRIVATE" + " KEY-----\nMIIE...",
        "-----BEGIN OPENSSH PRIVATE" + " KEY-----",
        # Split so that this file does not hold what it plants.
        "MLFLOW_TRACKING_URI=http://admin:" + "hunter2@mlflow:5000",
        'url = "postgresql+psycopg://domainflow:' + 'Xk93-fq@db.internal:5432/domainflow"',
    ],
    ids=["aws-key-id", "rsa-key", "openssh-key", "http-url", "database-url"],
)
def test_the_scan_finds_a_planted_credential(text):
    """Guards the scan above: a pattern that matches nothing would pass every repository."""
    assert find_credentials(text)


@pytest.mark.parametrize(
    "text",
    [
        "postgresql+psycopg://${POSTGRES_USER:?set it}:${POSTGRES_PASSWORD:?set it}@postgres:5432/mlflow",
        "DOMAINFLOW_DATABASE_URL=postgresql+psycopg://user:password@host:5432/domainflow",
        'f"postgresql://{user}:{password}@{host}/db"',
        "mysql://tuner:secret@127.0.0.1/studies",
        "AKIAIOSFODNN7EXAMPLE",
        "postgresql://mlflow@db/mlflow and sqlite:////tmp/mlflow.db",
    ],
)
def test_the_scan_lets_placeholders_through(text):
    assert find_credentials(text) == []


def test_real_env_files_are_ignored_and_untracked():
    tracked = [p.relative_to(ROOT).as_posix() for p in tracked_files()]
    assert [name for name in tracked if Path(name).name == ".env"] == []
    ignored = subprocess.run(["git", "check-ignore", "-q", "infra/.env"], cwd=ROOT)
    assert ignored.returncode == 0, "infra/.env holds the compose stack's real credentials: keep it in .gitignore"


# --- shown without the password --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (SECRET_URL, "postgresql+psycopg://user:***@host/db"),
        ("http://admin:" + "p@ss/word@mlflow:5000", "http://admin:***@mlflow:5000"),
        ("postgresql://host/db?user=u&password=s3cret&sslmode=require",
         "postgresql://host/db?user=u&password=***&sslmode=require"),
        ("postgresql://:s3cret@host/db", "postgresql://:***@host/db"),
        ("postgresql://mlflow@db/mlflow", "postgresql://mlflow@db/mlflow"),
        ("sqlite:////data/mlflow.db", "sqlite:////data/mlflow.db"),
        ("s3://bucket/mlflow", "s3://bucket/mlflow"),
        ("mlflow-artifacts:/", "mlflow-artifacts:/"),
        # MLflow's own error quotes the request URL, credentials and all.
        ("API request to http://admin:" + "s3cret@mlflow:5000/api/2.0/x failed with exception HTTPConnectionPool("
         "host='mlflow', port=5000)", "API request to http://admin:***@mlflow:5000/api/2.0/x failed with exception "
         "HTTPConnectionPool(host='mlflow', port=5000)"),
    ],
)  # fmt: skip
def test_without_passwords_hides_the_password_and_keeps_the_rest(url, shown):
    assert without_passwords(url) == shown


def test_settings_repr_hides_passwords_and_the_admin_token(tmp_path):
    settings = resolve_settings({
        "DOMAINFLOW_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": f"http://admin:{PASSWORD}@mlflow:5000",
        "DOMAINFLOW_DATABASE_URL": SECRET_URL, "DOMAINFLOW_ADMIN_TOKEN": "token-" + PASSWORD * 6,
        "DOMAINFLOW_REDIS_URL": f"redis://:{PASSWORD}@redis:6379/0",
    })  # fmt: skip
    shown = f"{settings!r} {settings}"
    assert PASSWORD not in shown
    assert "postgresql+psycopg://user:***@host/db" in shown and "admin:***@mlflow:5000" in shown
    assert "redis://:***@redis:6379/0" in shown
    # Without Redis (the default) it says so.
    assert "redis_url=None" in repr(resolve_settings({"DOMAINFLOW_HOME": str(tmp_path)}))


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """The CLI with password-bearing URLs in its environment; what a command adds to the environment is undone."""
    from domainflow.cli import app

    saved = dict(os.environ)
    monkeypatch.setenv("DOMAINFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://admin:{PASSWORD}@127.0.0.1:9/")
    monkeypatch.setenv("DOMAINFLOW_DATABASE_URL", SECRET_URL)
    monkeypatch.setenv("DOMAINFLOW_ADMIN_TOKEN", "token-" + PASSWORD * 6)
    config = tmp_path / "config.yaml"

    def run(*args, config_text: str = "domains: {values: null}\n"):
        # No domains by default: `serve` prints its banner, then stops before it opens anything.
        config.write_text(config_text)
        return CliRunner().invoke(app, [*args, "--config", str(config)])

    yield run
    # `serve` sets quiet_environment's defaults (Prefect's results folder: this test's tmp_path).
    os.environ.clear()
    os.environ.update(saved)


def test_serve_banner_names_the_servers_without_their_passwords(cli):
    result = cli("serve")
    output = result.output.replace("\n", "")
    assert result.exit_code == 2 and "serving needs the domains" in output  # stopped where the test meant
    assert "user:***@host/db" in output and "admin:***@127.0.0.1:9" in output
    assert PASSWORD not in output


def test_a_config_with_a_password_in_tuning_storage_is_refused_without_echoing_it(cli):
    """Flow parameters are stored by Prefect as they are, so the config may not hold a password at all."""
    result = cli("show-config", config_text=f"tuning: {{storage: '{SECRET_URL}'}}\n")
    assert result.exit_code == 2 and "PGPASSWORD" in result.output
    assert PASSWORD not in result.output
    fine = cli("show-config", config_text="tuning: {storage: 'postgresql+psycopg://user@host/db'}\n")
    assert fine.exit_code == 0 and "storage: postgresql+psycopg://user@host/db" in fine.output


URL_SETTINGS = {"tracking_uri", "database_url", "artifact_root"}


def test_every_url_the_cli_prints_goes_through_without_passwords():
    """Commands that need a live registry or database cannot run here; their f-strings are read instead."""
    tree = ast.parse((ROOT / "src" / "domainflow" / "cli.py").read_text())
    bare = [
        f"line {node.lineno}: {{{ast.unparse(node.value)}}}"
        for node in ast.walk(tree)
        if isinstance(node, ast.FormattedValue)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr in URL_SETTINGS
    ]
    assert bare == [], "wrap these in without_passwords(...)"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("CHANGE-ME-admin-token", "still the placeholder from infra/.env.example"),
        ("change-me-" + "x" * 40, "still the placeholder from infra/.env.example"),
        ("short-but-real", "has 14 characters, fewer than 32"),
    ],
)
def test_a_placeholder_or_short_admin_token_is_refused_without_echoing_it(token, message, tmp_path):
    """infra/.env.example's placeholders worked as real credentials (issue 18)."""
    with pytest.raises(SettingsError, match=message) as error:
        resolve_settings({"DOMAINFLOW_HOME": str(tmp_path), "DOMAINFLOW_ADMIN_TOKEN": token})
    assert token not in str(error.value)
    assert resolve_settings({"DOMAINFLOW_HOME": str(tmp_path), "DOMAINFLOW_ADMIN_TOKEN": "a" * 32}).admin_token


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("DOMAINFLOW_DATABASE_URL", "postgresql+psycopg://domainflow:CHANGE-ME-domainflow-db@postgres:5432/domainflow"),
        ("MLFLOW_TRACKING_URI", "postgresql://mlflow:change-me%2Dmlflow@db/mlflow"),
        ("DOMAINFLOW_REDIS_URL", "redis://:CHANGE-ME-redis@redis:6379/0"),
    ],
)
def test_a_url_whose_password_is_the_placeholder_is_refused_naming_the_variable(variable, url, tmp_path):
    """The init jobs refuse .env.example's placeholders; a URL holding one reached the app unrefused."""
    with pytest.raises(SettingsError, match=f"{variable} has infra/.env.example's CHANGE-ME placeholder") as error:
        resolve_settings({"DOMAINFLOW_HOME": str(tmp_path), variable: url})
    assert "CHANGE-ME-" not in str(error.value) and "change-me%2D" not in str(error.value)
    real = url.replace("CHANGE-ME-", "s3cr3t-").replace("change-me%2D", "s3cr3t-")
    assert resolve_settings({"DOMAINFLOW_HOME": str(tmp_path), variable: real})


def test_the_cli_refuses_a_placeholder_admin_token_with_exit_status_2(cli, monkeypatch):
    monkeypatch.setenv("DOMAINFLOW_ADMIN_TOKEN", "CHANGE-ME-admin-token")
    result = cli("serve")
    assert result.exit_code == 2 and "placeholder" in result.output
