from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from domainflow.store.audit import read_audit
from domainflow.store.database import open_database
from domainflow.store.rollouts import Arm, RolloutConflict, RolloutError, read_rollout, set_rollout


@pytest.fixture
def engine(tmp_path):
    return open_database(f"sqlite:///{tmp_path / 'state.db'}")


def test_a_rollout_change_bumps_the_revision_and_is_audited(engine):
    first = set_rollout(engine, "EWR", "m-EWR", [Arm("champion", "1", 1.0)], "initial", "test")
    again = set_rollout(engine, "EWR", "m-EWR", [Arm("champion", "1", 1.0)], "same", "test")
    canary = set_rollout(
        engine, "EWR", "m-EWR", [Arm("champion", "1", 0.9), Arm("canary", "2", 0.1)], "step 2", "run-1"
    )
    assert (first.revision, again.revision, canary.revision) == (1, 1, 2)
    assert read_rollout(engine, "EWR").weight_of("canary") == 0.1
    entries = read_audit(engine, "EWR")
    assert [e.reason for e in entries] == ["initial", "step 2"]
    assert entries[-1].before == [{"variant": "champion", "version": "1", "weight": 1.0}]
    assert entries[-1].actor == "run-1"


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ([], "at least one arm"),
        ([Arm("a", "1", 0.5), Arm("b", "2", 0.4)], "sum to 1"),
        ([Arm("a", "1", 0.5), Arm("a", "2", 0.5)], "unique"),
        ([Arm("a", "1", 1.5), Arm("b", "2", -0.5)], "must lie in [0, 1]"),
    ],
)
def test_bad_arms_are_refused_with_the_reason_and_nothing_changes(engine, arms, message):
    set_rollout(engine, "EWR", "m", [Arm("champion", "1", 1.0)], "initial", "test")
    with pytest.raises(RolloutError, match=re.escape(message)):
        set_rollout(engine, "EWR", "m", arms, "bad", "test")
    assert read_rollout(engine, "EWR").revision == 1


def test_a_stale_writer_loses_the_compare_and_set(engine):
    set_rollout(engine, "EWR", "m", [Arm("champion", "1", 1.0)], "initial", "test")
    with pytest.raises(RolloutConflict, match="revision 1, not 0"):
        set_rollout(engine, "EWR", "m", [Arm("champion", "2", 1.0)], "late", "test", expected_revision=0)


def test_a_writer_that_loses_the_race_to_create_the_rollout_gets_a_conflict_and_the_winner_stands(tmp_path):
    """Both read "no rollout"; the other process inserts first. Forced in that order by a hook before the insert."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine, other = open_database(url), open_database.__wrapped__(url)  # two pools: two processes

    raced = []

    def insert_first(connection, cursor, statement, *args):
        if statement.startswith("INSERT INTO rollouts") and not raced:
            raced.append(set_rollout(other, "EWR", "m", [Arm("champion", "1", 1.0)], "the other writer", "other"))

    event.listen(engine, "before_cursor_execute", insert_first)
    try:
        with pytest.raises(RolloutConflict, match="the rollout of EWR was created by another writer at the same time"):
            set_rollout(engine, "EWR", "m", [Arm("champion", "2", 1.0)], "late", "test")
    finally:
        event.remove(engine, "before_cursor_execute", insert_first)
    assert (read_rollout(engine, "EWR").arms, read_rollout(engine, "EWR").revision) == ((Arm("champion", "1", 1.0),), 1)
    assert [(e.reason, e.actor) for e in read_audit(engine, "EWR")] == [("the other writer", "other")]
