"""Where state lives. Resolved once, at the start of a flow or CLI command.

Everything defaults to one folder, `DOMAINFLOW_HOME` (./.domainflow): the MLflow
SQLite store and its artifacts, Prefect's persisted task results (the cache),
the quarantine files and the evaluation reports. Production points MLflow at PostgreSQL and S3 with
the standard variables (`MLFLOW_TRACKING_URI`, `DOMAINFLOW_ARTIFACT_ROOT`) and the serving state
(prediction log, rollouts, audit) at `DOMAINFLOW_DATABASE_URL`; the admin token is `DOMAINFLOW_ADMIN_TOKEN`.

Those URLs may carry a password: whatever shows one (the CLI, a log line, an error, `repr`) shows
`without_passwords(url)` instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from domainflow.redaction import without_passwords

# The admin token: long enough not to be guessed, and not infra/.env.example's placeholder.
MIN_TOKEN_LENGTH = 32
PLACEHOLDER = "change-me"


class SettingsError(ValueError):
    """An environment variable holds a value that must not be used; the message names it, never its value."""


@dataclass(frozen=True)
class Settings:
    home: Path
    tracking_uri: str
    artifact_root: str
    # The prediction log, rollout weights, promotion state and audit log (SQLAlchemy URL).
    database_url: str = ""
    # Where quarantined rows go: a folder or s3://bucket/prefix (DOMAINFLOW_OUTPUT_ROOT); the home by default.
    output_root: str = ""
    # Bearer token of the serving app's admin routes; None disables them.
    admin_token: str | None = None
    # Where the servers count each key's rate limits together (DOMAINFLOW_REDIS_URL); None: each in its memory.
    redis_url: str | None = None

    def __repr__(self) -> str:
        # The URLs without their passwords; the admin token not at all.
        urls = ", ".join(
            f"{name}={without_passwords(getattr(self, name)) if getattr(self, name) else getattr(self, name)!r}"
            for name in ("tracking_uri", "artifact_root", "database_url", "redis_url")
        )
        return f"Settings(home={self.home!r}, {urls}, admin_token={'***' if self.admin_token else None})"

    @property
    def quarantine_root(self) -> str:
        return f"{(self.output_root or str(self.home)).rstrip('/')}/quarantine"

    @property
    def results_dir(self) -> Path:
        return self.home / "prefect-results"

    @property
    def checkpoint_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


def resolve_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    home = Path(env.get("DOMAINFLOW_HOME", ".domainflow")).expanduser().resolve()
    tracking_uri = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
    artifact_root = env.get("DOMAINFLOW_ARTIFACT_ROOT") or (home / "mlartifacts").as_uri()
    database_url = env.get("DOMAINFLOW_DATABASE_URL") or f"sqlite:///{home / 'domainflow.db'}"
    for variable in ("MLFLOW_TRACKING_URI", "DOMAINFLOW_DATABASE_URL", "DOMAINFLOW_REDIS_URL"):
        _refuse_placeholder_password(variable, env.get(variable))
    return Settings(
        home=home,
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        database_url=database_url,
        output_root=env.get("DOMAINFLOW_OUTPUT_ROOT") or str(home),
        admin_token=_admin_token(env.get("DOMAINFLOW_ADMIN_TOKEN") or None),
        redis_url=env.get("DOMAINFLOW_REDIS_URL") or None,
    )


@dataclass(frozen=True)
class ClientKeys:
    """The API keys a domainflow client (the replay of `domainflow run`, a flow judging a server) sends.

    From DOMAINFLOW_PREDICTOR_KEY and DOMAINFLOW_LABELLER_KEY; `domainflow run` creates its own.
    Not part of Settings: Settings is a task input, and keys must stay out of cache keys and parameters.
    """

    predictor: str | None = None
    labeller: str | None = None

    def __repr__(self) -> str:
        return f"ClientKeys(predictor={'***' if self.predictor else None}, labeller={'***' if self.labeller else None})"

    def headers(self, role: str) -> dict[str, str]:
        token = self.predictor if role == "predictor" else self.labeller
        return {"Authorization": f"Bearer {token}"} if token else {}


PREDICTOR_KEY_VARIABLE, LABELLER_KEY_VARIABLE = "DOMAINFLOW_PREDICTOR_KEY", "DOMAINFLOW_LABELLER_KEY"


def resolve_client_keys(environ: dict[str, str] | None = None) -> ClientKeys:
    env = os.environ if environ is None else environ
    return ClientKeys(env.get(PREDICTOR_KEY_VARIABLE) or None, env.get(LABELLER_KEY_VARIABLE) or None)


def _refuse_placeholder_password(variable: str, url: str | None) -> None:
    """A URL whose password is still infra/.env.example's placeholder would connect with a published secret."""
    try:
        password = urlsplit(url).password if url else None
    except ValueError:  # not a URL this can read; the library that opens it says what is wrong
        return
    if password and PLACEHOLDER in unquote(password).lower():
        raise SettingsError(f"{variable} has infra/.env.example's CHANGE-ME placeholder as its password: set the "
                            "real one (or leave it out of the URL and use PGPASSWORD or ~/.pgpass)")  # fmt: skip


def _admin_token(token: str | None) -> str | None:
    if token is None:
        return None
    if PLACEHOLDER in token.lower():
        raise SettingsError("DOMAINFLOW_ADMIN_TOKEN is still the placeholder from infra/.env.example: set a random "
                            "one (openssl rand -hex 32), or unset it to keep the admin routes off")  # fmt: skip
    if len(token) < MIN_TOKEN_LENGTH:
        raise SettingsError(f"DOMAINFLOW_ADMIN_TOKEN has {len(token)} characters, fewer than {MIN_TOKEN_LENGTH}: "
                            "set a random one (openssl rand -hex 32)")  # fmt: skip
    return token


def quiet_environment(settings: Settings, environ: dict[str, str] | None = None) -> None:
    """Defaults for the engines this process will start: no telemetry, local results.

    Must run before prefect is imported; a value the user already set wins.
    """
    env = os.environ if environ is None else environ
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect gives its ephemeral API 20 s to start; on a busy two-core machine it took longer and the
    # command failed before doing anything.
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    env.setdefault("PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS", "false")
    env.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(settings.results_dir))
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
