"""`domainflow keys create|list|revoke` on a real SQLite state database, as an operator runs them."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from domainflow.access.authentication import KeyChecker, Refused
from domainflow.access.keys import parse_token
from domainflow.store.audit import read_audit, verify_audit
from domainflow.store.database import open_database


@pytest.fixture
def keys(tmp_path, monkeypatch):
    """`keys(*args)` runs `domainflow keys ...` against a state database of its own; `.engine` is it."""
    from domainflow.cli import app

    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("DOMAINFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOMAINFLOW_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "80")

    def run(*args: str):
        return CliRunner().invoke(app, ["keys", *args])

    run.engine = lambda: open_database(url)
    return run


def test_a_key_is_printed_once_works_lists_and_stops_working_when_revoked(keys):
    made = keys("create", "--role", "predictor", "--domain", "EWR", "--domain", "JFK", "--name", "checkout",
                "--expires-in", "90d")  # fmt: skip
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    key_id = parse_token(token)
    assert key_id is not None and "shown once" in made.stderr
    engine = keys.engine()
    caller = KeyChecker(engine, cache_seconds=0).caller(token)
    assert (caller.role, caller.domains, caller.key_id) == ("predictor", ("EWR", "JFK"), key_id)

    listed = keys("list")
    assert listed.exit_code == 0 and key_id in listed.stdout and "checkout" in listed.stdout
    assert token not in listed.stdout and all(len(line) <= 80 for line in listed.stdout.splitlines())

    assert keys("revoke", key_id, "--reason", "leaked in a CI log").exit_code == 0
    with pytest.raises(Refused, match=f"API key {key_id} was revoked"):
        KeyChecker(engine, cache_seconds=0).caller(token)
    again = keys("revoke", key_id, "--reason", "twice")
    assert again.exit_code == 2 and "revoked already" in again.output
    assert "revoked" in keys("list").stdout

    rows = [(e.action, e.subject, e.reason) for e in read_audit(engine, "*")]
    assert rows == [("key", key_id, "key created: checkout"), ("key", key_id, "leaked in a CI log")]
    assert all(e.actor.startswith(("user/", "uid/")) for e in read_audit(engine, "*"))
    assert verify_audit(engine).ok


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--role", "root", "--domain", "EWR", "--name", "x"], "unknown role 'root'"),
        (["--role", "labeller", "--domain", "../etc", "--name", "x"], "invalid domain name(s) '../etc'"),
        (["--role", "labeller", "--domain", "EWR", "--name", " "], "a key's name says what uses it"),
        (["--role", "labeller", "--domain", "EWR", "--name", "x", "--expires-in", "soon"], "--expires-in takes"),
        (["--role", "labeller", "--domain", "EWR", "--name", "x", "--expires-in", "-3d"], "--expires-in takes"),
    ],
)
def test_a_bad_flag_is_exit_2_naming_it_and_makes_no_key(keys, args, named):
    answer = keys("create", *args)
    assert answer.exit_code == 2 and named in answer.output and answer.stdout.strip() == ""
    assert "no API keys yet" in keys("list").stdout


def test_revoking_an_unknown_key_names_it(keys):
    keys.engine()
    answer = keys("revoke", "0123456789abcdef", "--reason", "x")
    assert answer.exit_code == 2 and "no key '0123456789abcdef'" in answer.output
