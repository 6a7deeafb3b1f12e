from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from domainflow.store.database import open_database
from domainflow.store.promotions import (
    ABORTED,
    PROMOTED,
    RUNNING,
    PromotionConflict,
    claim_promotion,
    end_promotion,
    heartbeat,
    read_promotion,
    save_state,
)

LEASE = 60.0


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def engine(url):
    return open_database(url)


def test_a_fresh_claim_starts_at_the_first_step(engine):
    state = claim_promotion(engine, "EWR", "2", "1", "run-a", LEASE, now=100.0)
    assert (state.status, state.step, state.started_at, state.step_started_at) == (RUNNING, 0, 100.0, 100.0)
    assert read_promotion(engine, "EWR") == state


def test_the_holder_resumes_and_a_stranger_is_refused_until_the_lease_runs_out(engine):
    first = claim_promotion(engine, "EWR", "2", "1", "run-a", LEASE, now=100.0)
    saved = save_state(engine, "EWR", "run-a", replace(first, step=1, step_started_at=130.0), RUNNING, now=130.0)
    resumed = claim_promotion(engine, "EWR", "2", "1", "run-a", LEASE, now=140.0)
    assert (resumed.step, resumed.started_at, resumed.heartbeat_at) == (1, 100.0, 140.0)

    with pytest.raises(PromotionConflict, match=r"EWR v2 is held by run-a since 1970-01-01 00:01:40") as refused:
        claim_promotion(engine, "EWR", "2", "1", "run-b", LEASE, now=140.0 + LEASE)
    assert "taken over 60 s after its last heartbeat" in str(refused.value)

    taken = claim_promotion(engine, "EWR", "2", "1", "run-b", LEASE, now=141.0 + LEASE)
    assert (taken.holder, taken.step, taken.started_at) == ("run-b", saved.step, 100.0)
    with pytest.raises(PromotionConflict, match="run-a lost the promotion of EWR v2: run-b took it over"):
        save_state(engine, "EWR", "run-a", saved, RUNNING, now=300.0)
    with pytest.raises(PromotionConflict, match="run-a lost"):
        heartbeat(engine, "EWR", "2", "run-a", now=300.0)


def test_a_running_promotion_of_another_version_blocks_a_new_one(engine):
    claim_promotion(engine, "EWR", "3", "1", "run-a", LEASE, now=100.0)
    with pytest.raises(
        PromotionConflict, match=r"EWR is already rolling out v3 \(holder run-a, .*wait for it or abort"
    ):
        claim_promotion(engine, "EWR", "4", "1", "run-b", LEASE, now=10_000.0)


def test_a_finished_promotion_is_returned_as_is_for_its_version_and_replaced_for_another(engine):
    state = claim_promotion(engine, "EWR", "2", "1", "run-a", LEASE, now=100.0)
    done = save_state(engine, "EWR", "run-a", replace(state, reason="all good"), PROMOTED, now=200.0)
    again = claim_promotion(engine, "EWR", "2", "1", "run-b", LEASE, now=300.0)
    assert again == done and again.holder == "run-a"

    fresh = claim_promotion(engine, "EWR", "3", "2", "run-b", LEASE, now=400.0)
    assert (fresh.version, fresh.champion_version, fresh.status, fresh.decisions) == ("3", "2", RUNNING, [])


def test_decisions_round_trip_through_the_table(engine):
    state = claim_promotion(engine, "EWR", "2", "1", "run-a", LEASE, now=100.0)
    record = {"step": 0, "action": "advance", "reason": "advance to 10%: ok", "figures": {"n_canary": 60}, "at": 130.0}
    save_state(engine, "EWR", "run-a", replace(state, decisions=[record], step=1), RUNNING, now=130.0)
    assert read_promotion(engine, "EWR").decisions == [record]


def test_ending_a_promotion_makes_its_controller_lose_the_claim(engine):
    state = claim_promotion(engine, "EWR", "2", "1", "run-a", LEASE, now=100.0)
    ended = end_promotion(engine, "EWR", ABORTED, "aborted by ops", "ops", now=110.0)
    assert (ended.status, ended.reason, ended.decisions[-1]["action"]) == (ABORTED, "aborted by ops", "abort")
    with pytest.raises(
        PromotionConflict, match=r"run-a lost the promotion of EWR v2: it is aborted \(aborted by ops\)"
    ):
        save_state(engine, "EWR", "run-a", state, RUNNING, now=120.0)
    with pytest.raises(PromotionConflict, match="no running promotion to end"):
        end_promotion(engine, "EWR", ABORTED, "again", "ops", now=130.0)


def _race(engines, claim) -> list:
    """Run `claim(engine, i)` on every engine at once; per contender, the state it got or the conflict it raised."""
    barrier = threading.Barrier(len(engines))
    results: list = [None] * len(engines)

    def contend(i, engine):
        barrier.wait()
        try:
            results[i] = claim(engine, i)
        except PromotionConflict as error:
            results[i] = error

    threads = [threading.Thread(target=contend, args=(i, e)) for i, e in enumerate(engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def assert_one_winner_per_race(engines, rounds: int = 15) -> None:
    """Fresh rows, a dead controller's stale claim and a finished older promotion: each claimed by all at once."""
    engine = engines[0]
    for round_ in range(rounds):
        domain = f"D{round_}"
        if round_ % 3 == 1:
            claim_promotion(engine, domain, "2", "1", "dead", LEASE, now=0.0)
        if round_ % 3 == 2:
            old = claim_promotion(engine, domain, "1", None, "past", LEASE, now=0.0)
            save_state(engine, domain, "past", old, PROMOTED, now=1.0)
        outcomes = _race(engines, lambda e, i, d=domain: claim_promotion(e, d, "2", "1", f"run-{i}", LEASE, 1_000.0))
        winners = [o for o in outcomes if not isinstance(o, PromotionConflict)]
        assert len(winners) == 1, outcomes
        assert read_promotion(engine, domain).holder == winners[0].holder
        assert all(winners[0].holder in str(o) for o in outcomes if isinstance(o, PromotionConflict))


def test_two_processes_racing_for_a_domain_never_both_win(url, engine):
    # Two engines (two connection pools) on one SQLite file stand in for two processes.
    assert_one_winner_per_race([engine, open_database.__wrapped__(url)])
