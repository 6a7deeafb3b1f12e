from __future__ import annotations

import os
import uuid

import pytest

POSTGRES_DSN = os.environ.get("DOMAINFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
START_HINT = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@pytest.fixture
def postgres_databases():
    """Fresh PostgreSQL databases for one test, made on demand (`postgres_databases()` -> URL), dropped afterwards.

    One per store, not one shared: MLflow and Optuna both keep their schema version in an
    `alembic_version` table, so they cannot share a database (each then refuses the other's revision).

    Skips with the reason where PostgreSQL is absent; in CI (CI=true) its
    absence is a failure, so integration tests can never pass by skipping.
    """
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES_DSN, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as error:
        message = f"PostgreSQL is not reachable at {POSTGRES_DSN} ({str(error).strip()}); {START_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    made: list[str] = []

    def make() -> str:
        name = f"domainflow_it_{uuid.uuid4().hex[:10]}"
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return POSTGRES_DSN.rsplit("/", 1)[0] + f"/{name}"

    yield make
    with admin.cursor() as cursor:
        for name in made:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def postgres_database(postgres_databases):
    """One fresh PostgreSQL database for one test (see postgres_databases)."""
    return postgres_databases()
