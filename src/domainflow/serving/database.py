"""The serving state's tables: rollouts, prediction log, feedback, audit log, promotions.

One SQLAlchemy schema for SQLite (the default, in DOMAINFLOW_HOME) and PostgreSQL
(production, `DOMAINFLOW_DATABASE_URL`). The server writes predictions and reads
rollouts; the canary controller reads the log and writes rollouts, promotions and
the audit; they share nothing but this database, so either can restart alone.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    make_url,
    text,
)
from sqlalchemy.schema import CreateIndex

metadata = MetaData()

rollouts = Table(
    "rollouts",
    metadata,
    Column("domain", String(200), primary_key=True),
    Column("model_name", String(400), nullable=False),
    # [{"variant": "champion", "version": "3", "weight": 0.9}, ...]; the weights sum to 1.
    Column("arms", JSON, nullable=False),
    # Bumped on every change: writers compare-and-set on it, readers notice a change by it.
    Column("revision", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("reason", Text, nullable=False, default=""),
)

predictions = Table(
    "predictions",
    metadata,
    Column("request_id", String(200), primary_key=True),
    Column("domain", String(200), nullable=False),
    Column("variant", String(100), nullable=False),
    Column("model_version", String(50), nullable=False),
    Column("score", Float),  # null when the model failed (see error)
    Column("latency_ms", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("error", Text),
    Column("features", JSON),
    # When the predicted event happens (the client's `event_time`); monitoring's daily series group by it.
    Column("event_time", Float),
    Index("ix_predictions_domain_time", "domain", "created_at"),
)
# Monitoring reads a version's latest window and streams its history by event time; without this
# index each read scans and sorts all of the domain's rows (on a 1M-row log, 6.1 s for the window, 0.3 s with it).
Index(
    "ix_predictions_version_time",
    predictions.c.domain,
    predictions.c.model_version,
    func.coalesce(predictions.c.event_time, predictions.c.created_at),
    predictions.c.request_id,
)

feedback = Table(
    "feedback",
    metadata,
    Column("request_id", String(200), primary_key=True),
    Column("label", SmallInteger, nullable=False),
    # Log loss of the logged score against the label, computed once when the label arrives.
    Column("loss", Float, nullable=False),
    Column("received_at", Float, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("domain", String(200), nullable=False),
    Column("action", String(100), nullable=False),  # weights | alias | promotion | rollback | ...
    Column("subject", String(400), nullable=False),  # what changed: an alias name, "weights", a version
    Column("before", JSON),
    Column("after", JSON),
    Column("reason", Text, nullable=False),
    Column("actor", String(400), nullable=False),  # who: a flow run id, "admin-api", "cli"
    Column("at", Float, nullable=False),
    Index("ix_audit_domain", "domain", "id"),
)

promotions = Table(
    "promotions",
    metadata,
    Column("domain", String(200), primary_key=True),
    Column("version", String(50), nullable=False),
    Column("champion_version", String(50)),
    Column("status", String(30), nullable=False),  # running | promoted | rolled_back | aborted
    Column("holder", String(400), nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    # The controller's persisted state: current step, step start, decisions with their figures.
    Column("state", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Each monitoring check of a domain: its verdict, figures and where its report is; `domainflow status` reads the latest.
monitoring_checks = Table(
    "monitoring_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("domain", String(200), nullable=False),
    Column("version", String(50), nullable=False),
    Column("status", String(30), nullable=False),  # ok | drift | degraded | insufficient
    Column("health", Float),
    Column("figures", JSON, nullable=False),
    Column("summary", JSON, nullable=False),  # the check as a dict: drift, quality, forecasts, health, events
    Column("report_uri", Text),
    Column("at", Float, nullable=False),
    Index("ix_monitoring_checks_domain", "domain", "id"),
)

# Challenger versions the registry watch has announced (domainflow.registry.challenger_set): each at most once.
announcements = Table(
    "registry_announcements",
    metadata,
    Column("domain", String(200), primary_key=True),
    Column("version", String(50), primary_key=True),
    Column("at", Float, nullable=False),
)


# One writer at a time for a domain's registry aliases (domainflow.registry.locks): the row is the lock.
registry_locks = Table(
    "registry_locks",
    metadata,
    Column("domain", String(200), primary_key=True),
    Column("holder", String(400), nullable=False),
    Column("expires_at", Float, nullable=False),
)


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
    """The engine for `url`, with the tables created; one engine (and pool) per URL in a process."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(_with_installed_driver(url), pool_pre_ping=True)
    metadata.create_all(engine, checkfirst=True)
    _add_missing_columns(engine)
    _add_missing_indexes(engine)
    return engine


# Columns added after a table's first release: (table, column, SQL type). create_all does not alter
# existing tables, so a log written by an earlier domainflow gets them here, its rows kept.
_ADDED_COLUMNS = [("predictions", "event_time", "FLOAT")]


def _add_missing_columns(engine: Engine) -> None:
    inspector = inspect(engine)
    for table, column, sql_type in _ADDED_COLUMNS:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            with engine.begin() as connection:
                connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))


def _add_missing_indexes(engine: Engine) -> None:
    """Indexes added after a table's first release; create_all makes them only with a new table."""
    # IF NOT EXISTS, not checkfirst: SQLAlchemy's SQLite inspector does not list expression indexes.
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            for index in table.indexes:
                connection.execute(CreateIndex(index, if_not_exists=True))


def _with_installed_driver(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; the extra installs psycopg 3, so name it (MLflow's URL stays)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url
