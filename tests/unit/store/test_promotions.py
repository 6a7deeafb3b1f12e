from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from domainflow.store.audit import AuditEntry, read_audit, verify_audit
from domainflow.store.database import open_database
from domainflow.store.promotions import (
    ABORTED,
    OPERATOR,
    PROMOTED,
    RUNNING,
    PromotionConflict,
    claim_promotion,
    end_promotion,
    heartbeat,
    override_rollout,
    read_promotion,
    save_state,
    write_canary_rollout,
)
from domainflow.store.rollouts import Arm, RolloutConflict, read_rollout, set_rollout

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


CHAMPION_ONLY = [Arm("champion", "1", 1.0)]


def _canary(weight: float) -> list[Arm]:
    return [Arm("champion", "1", 1 - weight), Arm("canary", "2", weight)]


def test_an_operators_change_ends_the_running_promotion_and_its_controller_cannot_write_over_it(engine):
    set_rollout(engine, "EWR", "m", CHAMPION_ONLY, "v1 serves", "deploy")
    state = claim_promotion(engine, "EWR", "2", "1", "run-a", LEASE, now=100.0)
    state = write_canary_rollout(engine, state, "run-a", "m", _canary(0.1), "step 1", "run-a", now=110.0)
    assert state.rollout_revision == read_promotion(engine, "EWR").rollout_revision == 2

    rollout, ended = override_rollout(engine, "EWR", "m", CHAMPION_ONLY, "pager", "ops")
    assert (rollout.revision, ended.status, ended.reason) == (3, ABORTED, "ended by operator ops: pager")
    assert ended.decisions[-1]["action"] == OPERATOR and ended.ended_by_operator
    assert read_promotion(engine, "EWR") == ended
    with pytest.raises(PromotionConflict, match=r"run-a lost .*: it is aborted \(ended by operator ops: pager\)"):
        write_canary_rollout(engine, state, "run-a", "m", _canary(0.5), "step 2", "run-a", now=120.0)
    assert read_rollout(engine, "EWR") == rollout

    # With no promotion running, a change is only a change.
    assert override_rollout(engine, "EWR", "m", _canary(0.2), "by hand", "ops")[1] is None
    # Both changes are audited; the first, which ended the canary, also as its rollback, in the same transaction.
    rows = [(e.action, e.subject, e.before, e.after, e.reason, e.actor) for e in read_audit(engine, "EWR")[2:]]
    assert rows == [
        ("weights", "m", [vars(a) for a in _canary(0.1)], [vars(a) for a in CHAMPION_ONLY], "pager", "ops"),
        ("rollback", "v2", {"status": RUNNING, "step": 1}, {"status": ABORTED, "champion": "1"},
         "ended by operator ops: pager", "ops"),
        ("weights", "m", [vars(a) for a in CHAMPION_ONLY], [vars(a) for a in _canary(0.2)], "by hand", "ops"),
    ]  # fmt: skip
    assert verify_audit(engine).ok


def test_a_saved_decision_is_audited_with_it_and_not_by_a_controller_that_lost_the_claim(engine):
    state = claim_promotion(engine, "EWR", "2", "1", "run-a", LEASE, now=100.0)
    entry = AuditEntry(domain="EWR", action="canary_step", subject="v2", before={"step": 1}, after={"step": 2},
                       reason="advance to 10%: ok", actor="run-a", at=130.0)  # fmt: skip
    save_state(engine, "EWR", "run-a", replace(state, step=1), RUNNING, now=130.0, audit=entry)
    assert read_audit(engine, "EWR") == [replace(entry, id=1)]

    end_promotion(engine, "EWR", ABORTED, "aborted by ops", "ops", now=140.0)
    with pytest.raises(PromotionConflict):
        save_state(engine, "EWR", "run-a", replace(state, step=2), RUNNING, now=150.0, audit=replace(entry, at=150.0))
    assert [e.action for e in read_audit(engine, "EWR")] == ["canary_step", "rollback"]
    assert verify_audit(engine).ok


def test_the_controller_writes_only_over_its_own_last_write_even_after_a_takeover(engine):
    set_rollout(engine, "EWR", "m", CHAMPION_ONLY, "v1 serves", "deploy")
    state = claim_promotion(engine, "EWR", "2", "1", "run-a", LEASE, now=100.0)
    assert state.rollout_revision == 1  # what served when it started
    state = write_canary_rollout(engine, state, "run-a", "m", _canary(0.1), "step 1", "run-a", now=110.0)
    state = write_canary_rollout(engine, state, "run-a", "m", _canary(0.1), "step 1", "run-a", now=115.0)
    assert state.rollout_revision == 2  # an unchanged step writes nothing

    # run-a dies; run-b takes over and expects what run-a last wrote.
    taken = claim_promotion(engine, "EWR", "2", "1", "run-b", LEASE, now=116.0 + LEASE)
    assert taken.rollout_revision == 2
    by_hand = set_rollout(engine, "EWR", "m", _canary(0.3), "hold at 30%", "script")
    with pytest.raises(RolloutConflict, match="revision 3, not 2"):
        write_canary_rollout(engine, taken, "run-b", "m", _canary(0.5), "step 2", "run-b", now=200.0 + LEASE)
    assert read_rollout(engine, "EWR") == by_hand
    assert read_promotion(engine, "EWR").heartbeat_at == 116.0 + LEASE  # nothing of the refused write stayed


def assert_an_operators_change_always_ends_the_promotion(engines, rounds: int = 10) -> None:
    """A controller writing its weights as fast as it can while an operator changes the rollout: the operator wins."""
    engine = engines[0]
    for round_ in range(rounds):
        domain = f"O{round_}"
        set_rollout(engine, domain, "m", CHAMPION_ONLY, "v1 serves", "deploy")
        start = claim_promotion(engine, domain, "2", "1", "run-a", LEASE, now=100.0)
        barrier = threading.Barrier(2)
        outcome: dict = {}

        def control(state=start, domain=domain, outcome=outcome, barrier=barrier):
            barrier.wait()
            try:
                for i in range(1, 200):
                    arms, now = _canary(0.1 if i % 2 else 0.5), 100.0 + i
                    state = write_canary_rollout(engines[0], state, "run-a", "m", arms, f"step {i}", "run-a", now=now)
            except Exception as error:  # a conflict is expected; anything else fails the test below
                outcome["controller"] = error
            outcome["state"] = state

        def operate(domain=domain, outcome=outcome, barrier=barrier):
            barrier.wait()
            for _ in range(50):  # sent without If-Match, a change racing a write may be refused: sent again
                try:
                    outcome["operator"] = override_rollout(engines[1], domain, "m", CHAMPION_ONLY, "pager", "ops")
                    return
                except RolloutConflict:
                    continue

        threads = [threading.Thread(target=control), threading.Thread(target=operate)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rollout, ended = outcome["operator"]
        assert (ended.status, ended.reason) == (ABORTED, "ended by operator ops: pager"), round_
        assert read_rollout(engine, domain) == rollout
        assert isinstance(outcome.get("controller", PromotionConflict()), PromotionConflict), outcome["controller"]
        with pytest.raises(PromotionConflict):
            write_canary_rollout(engine, outcome["state"], "run-a", "m", _canary(0.5), "late", "run-a", now=999.0)
        assert read_rollout(engine, domain) == rollout


def test_an_operators_change_racing_the_controller_always_ends_its_promotion(url, engine):
    assert_an_operators_change_always_ends_the_promotion([engine, open_database.__wrapped__(url)])
