"""The audit log: one row per operation, with what, when, why and who made it.

The operations, by action: `training_started` and `training_ended` (subject: the training's key),
`gate_verdict`, `registration` and `gate_override` (subject: the version), `alias` (subject: the alias),
`weights` (subject: the model; every change of a rollout's arms), `rollout_config` (subject: `canary`;
the canary plan a promotion runs under, when it differs from the domain's last), `canary_step` and
`rollback` (subject: the version), `retrain` (subject: the event's id, or `request`).

The rows are hash-chained, so that a row edited, removed or inserted behind domainflow's back (raw SQL, a
restored backup) shows: each stores `row_hash`, the SHA-256 of its content together with `prev_hash`, the
`row_hash` of the row before it (GENESIS_HASH for the first). Every row enters through `append_audit`,
which reads the chain's tail and inserts after it under a lock held to the end of its transaction, so
concurrent writers never chain onto the same row.

The hash covers every field but the id: the database gives the id at the insert, after the hash is made,
and the chain itself fixes each row's place, which is all the id stands for.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import Connection, Engine, bindparam, insert, select, text, update

from domainflow.store.schema import audit_log

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock's key for appending to the chain: fixed, and apart from the migrations' key.
_CHAIN_LOCK = 0x646F6D61756474
# What a row's hash covers besides its prev_hash: every field but the id.
_CONTENT = ("at", "domain", "action", "subject", "before", "after", "reason", "actor")
EXPORT_FIELDS = ("id", "time", *_CONTENT, "prev_hash", "row_hash")


@dataclass(frozen=True)
class AuditEntry:
    domain: str
    action: str  # weights | alias | gate_verdict | registration | canary_step | rollback | ... (see above)
    subject: str  # what changed: an alias name, the model's weights, a version
    before: Any
    after: Any
    reason: str
    actor: str  # who: a flow run, "key/<id>", "cli"
    at: float = field(default_factory=time.time)
    id: int | None = None  # given by the database


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    rows: int  # rows checked, the bad one included
    problem: str | None = None  # the first problem found, naming its row
    bad_row: int | None = None  # the id of the row the problem names first
    # The chain's end when it is intact: noted elsewhere, it shows later whether the newest rows were removed.
    last_row: int | None = None
    last_hash: str | None = None


def chain_hash(content: Mapping[str, Any], prev_hash: str) -> str:
    """The SHA-256 of a row's content and its prev_hash, as canonical JSON (sorted keys, no spaces, ASCII)."""
    canonical = json.dumps({**_content(content), "prev_hash": prev_hash}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _content(values: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed fields as the database gives them back: `at` a float, before and after through JSON."""
    content = {name: values[name] for name in _CONTENT}
    content["at"] = float(content["at"])
    for name in ("before", "after"):
        content[name] = json.loads(json.dumps(content[name]))  # tuples become lists, keys strings
    return content


def _lock_chain(connection: Connection) -> None:
    """Hold the chain's tail to the end of the transaction, before reading it."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
    else:
        # pysqlite begins a transaction only at the first write: a tail read before it may be extended by
        # another writer before this one commits. A write that changes nothing takes SQLite's write lock first.
        connection.execute(text("UPDATE audit_log SET id = id WHERE 0"))


def _tail_hash(connection: Connection) -> str:
    hashed = audit_log.c.row_hash.is_not(None)
    last = connection.execute(select(audit_log.c.row_hash).where(hashed).order_by(audit_log.c.id.desc()).limit(1))
    return last.scalar() or GENESIS_HASH


def append_audit(connection: Connection, entry: AuditEntry) -> int:
    """Add `entry` at the end of the chain in the caller's transaction; returns its id.

    The only way a row enters the audit log: under the lock, reading the tail and inserting after it are
    one step, so a write that must stand or fall with another (a rollout change) chains like any other.
    """
    _lock_chain(connection)
    content = _content(asdict(entry))
    prev_hash = _tail_hash(connection)
    row = {**content, "prev_hash": prev_hash, "row_hash": chain_hash(content, prev_hash)}
    return connection.execute(insert(audit_log).values(**row)).inserted_primary_key[0]


def record_audit(engine: Engine, entry: AuditEntry) -> None:
    with engine.begin() as connection:
        append_audit(connection, entry)


@dataclass(frozen=True)
class AuditTrail:
    """Where an operation's row goes and whose it is, for a call that audits what it does when given one."""

    engine: Engine
    domain: str
    actor: str  # who: a flow run, "admin-api", "cli"

    def record(self, action: str, subject: str, before: Any, after: Any, reason: str) -> None:
        record_audit(self.engine, AuditEntry(domain=self.domain, action=action, subject=subject, before=before,
                                             after=after, reason=reason, actor=self.actor))  # fmt: skip


def chain_unhashed_audit(connection: Connection) -> int:
    """Hash the rows that have no hash yet (written before the chain), in id order; returns how many.

    The migration that adds the chain runs it once. Rows already hashed keep their hashes, so a second
    run (two processes migrating a SQLite file at once) changes nothing.
    """
    _lock_chain(connection)
    prev_hash, chained = GENESIS_HASH, []
    for row in connection.execute(select(audit_log).order_by(audit_log.c.id)):
        row_hash = row.row_hash or chain_hash(row._mapping, prev_hash)
        if row.row_hash is None:
            chained.append({"row_id": row.id, "prev": prev_hash, "hash": row_hash})
        prev_hash = row_hash
    if chained:
        connection.execute(
            update(audit_log).where(audit_log.c.id == bindparam("row_id"))
            .values(prev_hash=bindparam("prev"), row_hash=bindparam("hash")),
            chained,
        )  # fmt: skip
    return len(chained)


def verify_audit(engine: Engine) -> AuditVerification:
    """Walk the rows in id order, recompute each hash and check each link; stop at the first problem.

    A row whose link holds (its prev_hash is the previous row's hash) but whose hash does not match its
    content was edited. A row whose link is broken is told apart by its own hash and by where its
    prev_hash points:
    - to an earlier row than the previous one: the rows between were inserted; the first of them is named;
    - to no row, and its own hash fails too: it is not a row the chain wrote, so it was inserted;
    - to no row, its own hash intact: it is genuine and lost its predecessor. After a gap in the ids a row
      was removed; with no gap, the previous row was most likely edited and given a new hash (the ids are
      not hashed, so this is the one guess the chain cannot settle).
    Two cases read otherwise than they were: a forged row that copies its predecessor's hash as its
    prev_hash reads as edited, and rows appended or removed at the end by someone who knows this scheme
    leave a valid chain. Only an anchor kept outside the database shows the latter: the last hash.
    """
    previous, seen, ids = GENESIS_HASH, {}, []
    with engine.connect() as connection:
        rows = connection.execution_options(yield_per=1000).execute(select(audit_log).order_by(audit_log.c.id))
        for row in rows:
            problem = _problem(row, previous, seen, ids)
            if problem is not None:
                bad_row, message = problem
                return AuditVerification(False, len(ids) + 1, message, bad_row)
            seen[row.row_hash] = len(ids)
            ids.append(row.id)
            previous = row.row_hash
    return AuditVerification(True, len(ids), last_row=ids[-1] if ids else None, last_hash=previous if ids else None)


def _problem(row, previous: str, seen: dict[str, int], ids: list[int]) -> tuple[int, str] | None:
    """What is wrong with `row` given the rows before it (their hashes by position, their ids): (row id, message)."""
    if row.row_hash is None or row.prev_hash is None:
        return row.id, f"row {row.id} was inserted without a hash (by hand, or by an older domainflow)"
    intact = chain_hash(row._mapping, row.prev_hash) == row.row_hash
    if row.prev_hash == previous:
        return None if intact else (row.id, f"row {row.id} was edited (its content no longer matches its hash)")
    if intact and row.row_hash in seen:
        return row.id, f"row {row.id} was inserted (a copy of row {ids[seen[row.row_hash]]})"
    if row.prev_hash == GENESIS_HASH or row.prev_hash in seen:
        position = seen.get(row.prev_hash, -1)
        follows = f"row {ids[position]}" if position >= 0 else "the start of the log"
        return ids[position + 1], f"row {ids[position + 1]} was inserted (row {row.id} follows {follows})"
    if not intact:
        return row.id, f"row {row.id} was inserted (its previous hash matches no row before it)"
    if not ids:
        return row.id, f"row {row.id} does not follow the start of the log: a row before it was removed"
    if row.id > ids[-1] + 1:
        return row.id, f"row {row.id} does not follow row {ids[-1]}: a row before it was removed"
    return ids[-1], f"row {row.id} does not follow row {ids[-1]}: row {ids[-1]} was edited and rehashed"


def read_audit(
    engine: Engine, domain: str | None = None, limit: int | None = None, *, action: str | None = None
) -> list[AuditEntry]:
    """Entries oldest first (the last `limit` of them when given), of one `action` when given."""
    columns = [audit_log.c[f.name] for f in fields(AuditEntry)]
    query = select(*columns).order_by(audit_log.c.id.desc())
    if domain is not None:
        query = query.where(audit_log.c.domain == domain)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [AuditEntry(**row._mapping) for row in reversed(rows)]


def export_audit(engine: Engine, stream: TextIO, since: float | None = None, fmt: str = "jsonl") -> int:
    """Write the rows from `since` (seconds since the epoch) on, oldest first, as JSON lines or CSV; returns how many.

    Each row keeps `at` and its hashes as stored, so a copy can be checked against the chain; `time` is
    `at` in ISO 8601, UTC. In CSV, before and after are JSON.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"the export format is jsonl or csv, not {fmt!r}")
    query = select(audit_log).order_by(audit_log.c.id)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    writer = csv.DictWriter(stream, EXPORT_FIELDS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    count = 0
    with engine.connect() as connection:
        for row in connection.execution_options(yield_per=1000).execute(query):
            record = {**row._mapping, "time": datetime.fromtimestamp(row.at, UTC).isoformat()}
            record = {name: record[name] for name in EXPORT_FIELDS}
            if writer is None:
                stream.write(json.dumps(record) + "\n")
            else:
                writer.writerow({**record, "before": json.dumps(row.before), "after": json.dumps(row.after)})
            count += 1
    return count
