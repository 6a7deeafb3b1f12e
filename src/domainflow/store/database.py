"""Opening the state database and bringing its schema up to date.

SQLite by default (`DOMAINFLOW_HOME/domainflow.db`), PostgreSQL in production
(`DOMAINFLOW_DATABASE_URL`). Migrations are SQLAlchemy's create-if-missing with a version
table, not Alembic: every process that keeps state (the server, each flow run and domain
worker, the CLI) opens the database itself, often several at once on a fresh SQLite file, so
each step is idempotent (`CREATE ... IF NOT EXISTS`, a column added only when missing) and
any of them may run it; no separate `upgrade` command or migration environment has to ship.
On PostgreSQL an advisory lock serializes the steps, whose catalog writes can otherwise race.
Each applied step is a row of `domainflow_schema_versions`; a database that a newer
domainflow migrated is refused instead of being written with an older schema. A change that
rewrites data is a step like the others and runs once, as the version table records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import CreateIndex, CreateTable

from domainflow.store.audit import chain_unhashed_audit
from domainflow.store.schema import metadata, schema_versions

# pg_advisory_xact_lock's key for the migration steps: any fixed 64-bit number unique to domainflow.
_MIGRATION_LOCK = 0x646F6D61696E66


class SchemaError(RuntimeError):
    """The database's schema is newer than this domainflow knows; the message says which versions."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _create_missing_tables(connection: Connection) -> None:
    for table in metadata.sorted_tables:
        connection.execute(CreateTable(table, if_not_exists=True))


def _add_event_time(connection: Connection) -> None:
    """Logs written before the client's event time was kept gain the column, their rows kept."""
    _add_missing_column(connection, "predictions", "event_time", "FLOAT")


def _create_missing_indexes(connection: Connection) -> None:
    # IF NOT EXISTS, not checkfirst: SQLAlchemy's SQLite inspector does not list expression indexes.
    for table in metadata.sorted_tables:
        for index in table.indexes:
            connection.execute(CreateIndex(index, if_not_exists=True))


def _chain_the_audit(connection: Connection) -> None:
    """The audit log gains its hash chain; the rows it holds are chained in id order, once."""
    _add_missing_column(connection, "audit_log", "prev_hash", "VARCHAR(64)")
    _add_missing_column(connection, "audit_log", "row_hash", "VARCHAR(64)")
    chain_unhashed_audit(connection)


def _add_api_keys(connection: Connection) -> None:
    """The API keys' table, and the key that asked for each prediction and sent each label (null before)."""
    _create_missing_tables(connection)
    _add_missing_column(connection, "predictions", "key_id", "VARCHAR(40)")
    _add_missing_column(connection, "feedback", "key_id", "VARCHAR(40)")


MIGRATIONS = (
    Migration(1, "the state tables", _create_missing_tables),
    Migration(2, "predictions.event_time, for logs written before it", _add_event_time),
    Migration(3, "the indexes monitoring reads the log by", _create_missing_indexes),
    Migration(4, "lifecycle_runs, each domain's loop outcome by its inputs", _create_missing_tables),
    Migration(5, "audit_log.prev_hash and row_hash, the rows it held chained", _chain_the_audit),
    Migration(6, "api_keys, and the key id of each prediction and label", _add_api_keys),
)
LATEST_VERSION = MIGRATIONS[-1].version


def _add_missing_column(connection: Connection, table: str, column: str, sql_type: str) -> None:
    if column in {c["name"] for c in inspect(connection).get_columns(table)}:
        return
    try:
        connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
    except OperationalError:
        # SQLite has no lock around the steps: another process may have added it just now.
        if column not in {c["name"] for c in inspect(connection).get_columns(table)}:
            raise


# A migration that finds a fresh SQLite file "locked" is tried again this many times.
SQLITE_LOCKED_TRIES = 5


def migrate(engine: Engine) -> int:
    """Apply the steps this database has not had, in order; returns its schema version.

    On SQLite a writer whose read snapshot went stale while others created the tables gets "database
    is locked" at once, whatever the busy timeout (SQLITE_BUSY_SNAPSHOT); every step is idempotent,
    so the migration is run again after a short wait.
    """
    for attempt in range(1, SQLITE_LOCKED_TRIES + 1):
        try:
            return _migrate(engine)
        except OperationalError as error:
            if (
                engine.dialect.name != "sqlite"
                or "database is locked" not in str(error)
                or attempt == SQLITE_LOCKED_TRIES
            ):
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def _migrate(engine: Engine) -> int:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        connection.execute(CreateTable(schema_versions, if_not_exists=True))
        applied = set(connection.execute(select(schema_versions.c.version)).scalars())
        newest = max(applied, default=0)
        if newest > LATEST_VERSION:
            raise SchemaError(
                f"{engine.url.render_as_string(hide_password=True)} is at schema version {newest}, written by a "
                f"newer domainflow; this one knows versions up to {LATEST_VERSION}: upgrade domainflow to use it"
            )
        insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            migration.apply(connection)
            row = {"version": migration.version, "description": migration.description, "applied_at": time.time()}
            # Two processes migrating a fresh SQLite file at once both record a step: the first row stands.
            connection.execute(insert(schema_versions).values(**row).on_conflict_do_nothing())
    return LATEST_VERSION


def schema_version(engine: Engine) -> int:
    """The newest migration applied to the database (0 when it has none)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(schema_versions.name):
            return 0
        return max(connection.execute(select(schema_versions.c.version)).scalars(), default=0)


def _sqlite_pragmas(connection, _record) -> None:
    # WAL lets the server write the log while the controller reads it; the busy timeout
    # makes a writer wait for another instead of failing with "database is locked".
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@cache
def open_database(url: str) -> Engine:
    """The engine for `url`, its schema migrated; one engine (and pool) per URL in a process."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(_with_installed_driver(url), pool_pre_ping=True, pool_timeout=POOL_TIMEOUT_SECONDS,
                               connect_args=POSTGRESQL_TIMEOUTS)  # fmt: skip
    migrate(engine)
    return engine


# A PostgreSQL that hangs (a network partition, a stuck lock) must fail a call, not hold it: the server's
# log writer then queues and retries (capped) instead of growing until the pod is killed. libpq's settings:
# a connection attempt gives up after 10 s, a statement after 2 min, and a dead peer is noticed within
# about a minute (TCP keepalives); waiting for a pooled connection gives up after 30 s.
POSTGRESQL_TIMEOUTS = {
    "connect_timeout": 10,
    "options": "-c statement_timeout=120000 -c lock_timeout=60000",
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
POOL_TIMEOUT_SECONDS = 30


def _with_installed_driver(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; the extra installs psycopg 3, so name it (MLflow's URL stays)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url
