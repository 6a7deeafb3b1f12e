"""Two processes gating and promoting versions of the same domains at once leave the registry consistent.

On SQLite (the default store) and on PostgreSQL (production): in every domain exactly one
version is champion, the audit names every alias move in the order it was made (replaying it
gives the registry's aliases), and the domain's first champion was set exactly once.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from mlflow import MlflowClient

from domainflow.registry.aliases import CANARY, PREVIOUS_CHAMPION
from domainflow.registry.mlflow_registry import CHALLENGER, CHAMPION, current_alias_version
from domainflow.store.audit import read_audit
from domainflow.store.database import open_database

DOMAINS = [f"D{i}" for i in range(8)]
VERSIONS_PER_WRITER = 2
ALIASES = (CHAMPION, CHALLENGER, CANARY, PREVIOUS_CHAMPION)


def model_name(domain: str) -> str:
    return f"race-{domain}"


def writer(index: int, tracking_uri: str, database_url: str, start_together) -> int:
    """One process: for each domain, gate its own versions, then promote its last one."""
    from domainflow.registry.aliases import apply_gate_verdict, promote
    from domainflow.registry.domain_model import DomainModel

    engine = open_database(database_url)
    mine = [index * VERSIONS_PER_WRITER + n + 1 for n in range(VERSIONS_PER_WRITER)]
    start_together.wait()
    for domain in DOMAINS:
        model = DomainModel(domain=domain, name=model_name(domain), tracking_uri=tracking_uri, engine=engine)
        for version in mine:
            apply_gate_verdict(model, str(version), True, "min_test_auc: passed", actor=f"writer-{index}")
        promote(model, str(mine[-1]), "canary passed", f"writer-{index}")
    return len(DOMAINS)


def race(tracking_uri: str, database_url: str) -> None:
    client = MlflowClient(tracking_uri)
    for domain in DOMAINS:
        client.create_registered_model(model_name(domain))
        for _ in range(2 * VERSIONS_PER_WRITER):
            client.create_model_version(model_name(domain), source=Path(tempfile.gettempdir()).as_uri())
    open_database(database_url)  # the tables exist before the writers start
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
        barrier = manager.Barrier(2, timeout=120)
        futures = [pool.submit(writer, index, tracking_uri, database_url, barrier) for index in (0, 1)]
        assert [future.result(timeout=300) for future in futures] == [len(DOMAINS)] * 2


def assert_consistent(tracking_uri: str, database_url: str) -> None:
    client = MlflowClient(tracking_uri)
    engine = open_database(database_url)
    for domain in DOMAINS:
        name = model_name(domain)
        registry = {alias: current_alias_version(client, name, alias) for alias in ALIASES}
        versions = [client.get_model_version(name, str(n)) for n in range(1, 2 * VERSIONS_PER_WRITER + 1)]
        holders = [v.version for v in versions if CHAMPION in v.aliases]
        assert len(holders) == 1 and str(holders[0]) == registry[CHAMPION], (domain, holders)

        moves = [e for e in read_audit(engine, domain) if e.action == "alias"]
        replayed: dict[str, str | None] = dict.fromkeys(ALIASES)
        for entry in moves:  # oldest first: each move starts where the one before it left the alias
            assert entry.before == replayed[entry.subject], (domain, entry)
            replayed[entry.subject] = entry.after
        assert replayed == registry, domain
        first_champion = [e for e in moves if e.subject == CHAMPION and e.before is None]
        assert len(first_champion) == 1, (domain, first_champion)
        # Both writers promoted: the champion is one of their last versions, the other is previous-champion.
        finals = {str(VERSIONS_PER_WRITER), str(2 * VERSIONS_PER_WRITER)}
        assert registry[CHAMPION] in finals and registry[PREVIOUS_CHAMPION] is not None, (domain, registry)


def test_racing_writers_on_sqlite_leave_one_champion_and_a_complete_audit(tmp_path):
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    database_url = f"sqlite:///{tmp_path}/domainflow.db"
    race(tracking_uri, database_url)
    assert_consistent(tracking_uri, database_url)


@pytest.mark.integration
def test_racing_writers_on_postgresql_leave_one_champion_and_a_complete_audit(postgres_database):
    race(postgres_database, postgres_database)
    assert_consistent(postgres_database, postgres_database)


def test_a_sqlite_store_locked_by_another_writer_fails_clearly_and_loses_nothing(tmp_path):
    """MLflow waits for SQLite's lock and retries; past that, the error says why, and the store is as it was."""
    import sqlite3

    from domainflow.registry.mlflow_registry import StoreBusy, explained_store_errors

    path = tmp_path / "mlflow.db"
    tracking_uri = f"sqlite:///{path}?timeout=0.05"  # SQLite's own wait for the lock, shortened for the test
    client = MlflowClient(tracking_uri)
    client.create_registered_model("race-locked")
    client.set_registered_model_tag("race-locked", "kept", "yes")
    other_writer = sqlite3.connect(path, isolation_level=None)
    other_writer.execute("BEGIN EXCLUSIVE")
    try:
        with (
            pytest.raises(StoreBusy, match=r"stayed locked by another writer.*PostgreSQL") as error,
            explained_store_errors(tracking_uri),
        ):
            client.set_registered_model_tag("race-locked", "new", "value")
        assert str(path) in str(error.value) and "SELECT" not in str(error.value)
    finally:
        other_writer.execute("ROLLBACK")
        other_writer.close()
    assert client.get_registered_model("race-locked").tags == {"kept": "yes"}
    client.set_registered_model_tag("race-locked", "new", "value")  # once the lock is gone, the write goes through
    assert client.get_registered_model("race-locked").tags == {"kept": "yes", "new": "value"}
