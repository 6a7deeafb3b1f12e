from __future__ import annotations

import re

import pytest

from domainflow.serving.audit import read_audit
from domainflow.serving.database import open_database
from domainflow.serving.rollouts import Arm, RolloutConflict, RolloutError, read_rollout, route, set_rollout


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


def test_routing_is_stable_follows_the_weights_and_only_moves_requests_onto_the_canary():
    ids = [f"req-{i}" for i in range(20_000)]
    small = [Arm("champion", "1", 0.9), Arm("canary", "2", 0.1)]
    large = [Arm("champion", "1", 0.5), Arm("canary", "2", 0.5)]
    at_10 = [route(i, small).variant for i in ids]
    at_50 = [route(i, large).variant for i in ids]
    assert at_10 == [route(i, small).variant for i in ids]
    assert 0.09 < at_10.count("canary") / len(ids) < 0.11
    assert 0.48 < at_50.count("canary") / len(ids) < 0.52
    assert all(b == "canary" for a, b in zip(at_10, at_50, strict=True) if a == "canary")


def test_three_way_split_routes_in_proportion():
    arms = [Arm("a", "1", 0.5), Arm("b", "2", 0.3), Arm("c", "3", 0.2)]
    chosen = [route(f"id-{i}", arms).variant for i in range(30_000)]
    shares = {name: chosen.count(name) / len(chosen) for name in "abc"}
    assert shares == pytest.approx({"a": 0.5, "b": 0.3, "c": 0.2}, abs=0.015)
