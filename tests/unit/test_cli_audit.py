"""`domainflow audit verify` and `audit export` on a real SQLite state database, as a user runs them."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from domainflow.store.audit import EXPORT_FIELDS, AuditEntry, record_audit
from domainflow.store.database import open_database

# 2026-11-30 12:00 and 2026-12-01 00:00, 06:00 UTC
TIMES = (1796040000.0, 1796083200.0, 1796104800.0)


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """The CLI against a state database of its own; returns (run, engine)."""
    from domainflow.cli import app

    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("DOMAINFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOMAINFLOW_DATABASE_URL", url)
    monkeypatch.delenv("DOMAINFLOW_ADMIN_TOKEN", raising=False)
    engine = open_database(url)
    for n, at in enumerate(TIMES):
        record_audit(engine, AuditEntry("EWR", "alias", "champion", str(n), str(n + 1), f"gate {n}", "cli", at=at))

    def run(*args: str):
        return CliRunner().invoke(app, ["audit", *args])

    return run, engine


def _fits(output: str) -> bool:
    return all(len(line) <= 80 for line in output.splitlines())


def test_verify_says_the_chain_is_intact_with_exit_status_0(cli):
    run, _ = cli
    result = run("verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "3 rows, chain intact (last row 3)"
    assert result.stdout.splitlines()[1].startswith("last hash ") and _fits(result.output)


def test_verify_names_the_edited_row_with_exit_status_1(cli):
    run, engine = cli
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE id = 2"))
    result = run("verify")
    assert result.exit_code == 1
    assert "row 2 was edited" in result.stderr and "chain intact" not in result.stdout
    assert _fits(result.output)


def test_export_writes_json_lines_since_a_date_to_stdout(cli):
    run, _ = cli
    result = run("export", "--since", "2026-12-01")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["id"], r["reason"], r["time"]) for r in rows] == [
        (2, "gate 1", "2026-12-01T00:00:00+00:00"), (3, "gate 2", "2026-12-01T06:00:00+00:00")]  # fmt: skip
    assert tuple(rows[0]) == EXPORT_FIELDS and rows[1]["prev_hash"] == rows[0]["row_hash"]
    assert "exported 2 rows" in result.stderr


def test_export_writes_csv_to_a_file_from_an_iso_time_with_its_zone(cli, tmp_path):
    run, _ = cli
    target = tmp_path / "audit.csv"
    # 07:00 at UTC+2 is 05:00 UTC: only the 06:00 row follows.
    result = run("export", "--since", "2026-12-01T07:00:00+02:00", "--format", "csv", "--output", str(target))
    assert result.exit_code == 0, result.output
    [row] = list(csv.DictReader(io.StringIO(target.read_text())))
    assert (row["id"], row["before"], row["after"]) == ("3", '"2"', '"3"')


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "01/12/2026"])
def test_a_bad_since_is_refused_with_exit_status_2(cli, since):
    run, _ = cli
    result = run("export", "--since", since)
    assert result.exit_code == 2
    assert "--since takes a date or ISO time" in result.stderr and result.stdout == ""
    assert _fits(result.output)
