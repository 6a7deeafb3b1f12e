"""infra/postgres-init.sh on a real PostgreSQL: one role per database, owning it alone (issue 18).

Compose runs it as its `postgres-init` job; here it runs against the local server with names of
its own (the script takes the databases as arguments), so nothing else on the server is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import make_url

from .conftest import POSTGRES_DSN

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "postgres-init.sh"


@pytest.fixture
def admin(postgres_databases):
    """A superuser connection and the script's runner (postgres_databases skips where PostgreSQL is absent)."""
    psycopg = pytest.importorskip("psycopg")
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    url = make_url(POSTGRES_DSN)
    names = [f"df_roles_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    connection = psycopg.connect(POSTGRES_DSN, autocommit=True)

    def run(*databases: str, **passwords: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PGHOST": url.host or "127.0.0.1", "PGPORT": str(url.port or 5432),
               "PGUSER": url.username or "postgres", **passwords}  # fmt: skip
        return subprocess.run(["sh", str(SCRIPT), *databases], env=env, capture_output=True, text=True, timeout=60)

    yield connection, names, run
    for name in names:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"DROP ROLE IF EXISTS {name}")
    connection.close()


def _password_variables(names: list[str], password: str = "a-real-password") -> dict[str, str]:
    return {f"{name.upper()}_DB_PASSWORD": password for name in names}


def test_each_role_owns_its_database_alone_and_may_create_what_mlflow_and_prefect_need(admin):
    connection, names, run = admin
    # The first database exists already, filled by the superuser (a stack from before the roles).
    connection.execute(f"CREATE DATABASE {names[0]}")
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(make_url(POSTGRES_DSN).set(database=names[0]).render_as_string(False)) as old:
        old.execute("CREATE TABLE runs (id serial PRIMARY KEY, status text); CREATE TYPE status AS ENUM ('done')")
        old.execute("CREATE VIEW finished AS SELECT id FROM runs")

    for _ in range(2):  # on every `up`: the second run changes nothing and fails on nothing
        result = run(*names, **_password_variables(names))
        assert result.returncode == 0, result.stderr

    rows = connection.execute(
        "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)",
        [names],
    ).fetchall()
    assert sorted(rows) == [(name, False, False, False, True) for name in sorted(names)]
    query = "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = ANY(%s)"
    owners = dict(connection.execute(query, [names]).fetchall())
    assert owners == {name: name for name in names}

    base = make_url(POSTGRES_DSN)
    own = base.set(username=names[0], database=names[0]).render_as_string(False)
    with psycopg.connect(own, autocommit=True) as role:
        owned = role.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S', 'v') "
            "AND pg_get_userbyid(relowner) <> current_user"
        ).fetchall()
        assert owned == []  # the superuser's tables, their sequences and views were handed over
        role.execute("INSERT INTO runs (status) VALUES ('x'); ALTER TABLE runs ADD COLUMN note text")
        role.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # Prefect's migrations create it
    other = base.set(username=names[1], database=names[0]).render_as_string(False)
    with pytest.raises(psycopg.OperationalError, match="CONNECT privilege"):
        psycopg.connect(other).close()


def test_a_placeholder_password_or_a_superuser_name_stops_it_before_anything_changes(admin):
    connection, names, run = admin
    placeholder = run(*names, **_password_variables(names[:1]), **_password_variables(names[1:], "CHANGE-ME-x"))
    assert placeholder.returncode != 0 and "is still the placeholder" in placeholder.stderr
    assert connection.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", [names]).fetchone() == (0,)

    superuser = make_url(POSTGRES_DSN).username or "postgres"
    refused = run(superuser, **_password_variables([superuser]))
    assert refused.returncode != 0 and f"the role {superuser} is a superuser" in refused.stderr
