"""Every state table domainflow keeps besides MLflow's and Optuna's: one schema for SQLite and PostgreSQL.

The server writes predictions and reads rollouts; the canary controller reads the log and
writes rollouts, promotions and the audit; monitoring records its checks; every alias move
takes a lock row. They share nothing but this database, so each can restart alone.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, SmallInteger, String, Table, Text, func

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
    # The API key that asked for it (domainflow.access.keys); null when the server ran without keys.
    Column("key_id", String(40)),
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
    # The API key that sent the label: each label's provenance (the canary counts its labels per key).
    Column("key_id", String(40)),
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
    Column("actor", String(400), nullable=False),  # who: a flow run id, "key/<id>", "cli"
    Column("at", Float, nullable=False),
    # The hash chain (domainflow.store.audit): the previous row's row_hash, and this row's over its content and that.
    Column("prev_hash", String(64)),
    Column("row_hash", String(64)),
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


# One writer at a time for a domain's registry aliases (domainflow.store.locks): the row is the lock.
registry_locks = Table(
    "registry_locks",
    metadata,
    Column("domain", String(200), primary_key=True),
    Column("holder", String(400), nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Each domain's lifecycle outcome (training, canary, monitoring, retraining) by the inputs that made it
# (domainflow.store.lifecycles): a run with the same data, config and code reports it instead of acting again.
lifecycle_runs = Table(
    "lifecycle_runs",
    metadata,
    Column("domain", String(200), primary_key=True),
    Column("run_key", String(100), primary_key=True),
    Column("actor", String(400), nullable=False),  # the flow run that completed it
    Column("finished_at", Float, nullable=False),
    Column("outcome", JSON, nullable=False),
)

# The prediction server's API keys (domainflow.access.keys): the secret is kept only as its SHA-256.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(40), primary_key=True),  # public: the token's prefix, named in logs and the audit
    Column("name", String(200), nullable=False),
    Column("role", String(30), nullable=False),  # predictor | labeller | operator | admin
    Column("domains", JSON, nullable=False),  # the domains it may act on; ["*"] for all
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(400), nullable=False),
    Column("expires_at", Float),  # null: never
    Column("revoked_at", Float),
    Column("revoked_by", String(400)),
)

# The migrations applied to this database (domainflow.store.database), one row each.
schema_versions = Table(
    "domainflow_schema_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", Float, nullable=False),
)
