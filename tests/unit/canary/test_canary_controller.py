"""The controller on a real SQLite serving database and a real MLflow registry, fed by simulated traffic.

The traffic simulator runs in the controller's `sleep` hook: every tick moves a fake clock and
sends requests routed by the real `route()` over the rollout as it stands, so the canary sees
exactly the share of traffic the controller gave it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest
from mlflow import MlflowClient

from domainflow.canary.controller import Clock, PromotionError, abort_promotion, roll_back_promotion, run_promotion
from domainflow.canary.report import summarize_promotion
from domainflow.config import CanaryConfig, RolloutStep, build_config
from domainflow.optimization.torch_variants import build_fp32
from domainflow.registry.aliases import CANARY, PREVIOUS_CHAMPION, apply_gate_verdict
from domainflow.registry.domain_model import DomainModel
from domainflow.registry.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    TAG,
    RunRecord,
    current_alias_version,
    log_run,
    register_logged_model,
)
from domainflow.serving.app import create_app
from domainflow.serving.routing import route
from domainflow.serving.server import serve_in_background
from domainflow.settings import Settings
from domainflow.store.audit import read_audit, verify_audit
from domainflow.store.database import open_database
from domainflow.store.prediction_log import PredictionRecord, record_feedback, record_predictions
from domainflow.store.promotions import ABORTED, OPERATOR, PROMOTED, ROLLED_BACK, PromotionConflict, read_promotion
from domainflow.store.rollouts import Arm, read_rollout, set_rollout

DOMAIN = "EWR"
ALIASES = (CHAMPION, CHALLENGER, CANARY, PREVIOUS_CHAMPION)
PLAN = CanaryConfig(
    steps=[
        RolloutStep(weight=0.01, min_bake_seconds=5, min_samples=5),
        RolloutStep(weight=0.10, min_bake_seconds=5, min_samples=60, require_quality=True),
        RolloutStep(weight=0.50, min_bake_seconds=5, min_samples=150, require_quality=True),
        RolloutStep(weight=1.00, min_bake_seconds=5, min_samples=100),
    ],
    max_step_seconds=3_600,
    max_step_samples=100_000,
    poll_seconds=5,
    max_error_rate=0.02,
    max_p95_latency_ms=200,
    max_latency_ratio=2.0,
    quality_margin=0.1,
    alpha=0.05,
    tau=0.1,
    min_labelled=60,
    lease_seconds=30,
)


@dataclass(frozen=True)
class Behaviour:
    """How a model version answers: noise on the true probability (worse log loss), latency, failures."""

    noise: float = 0.0
    latency_ms: float = 40.0
    error_rate: float = 0.0


GOOD = {"1": Behaviour(), "2": Behaviour()}
WORSE = {"1": Behaviour(), "2": Behaviour(noise=0.4)}  # log loss about +0.4


class Crash(RuntimeError):
    """Stands for the controller's process dying."""


@dataclass
class World:
    """One domain's serving database, registered model, fake clock and traffic."""

    engine: object
    tracking_uri: str
    model: str
    domain: str
    behaviours: dict[str, Behaviour]
    seed: int = 0
    requests_per_tick: int = 300
    now: float = 1_000_000.0
    tick: int = 0
    unlabelled: list = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """One poll interval of traffic: requests routed over the current rollout, last tick's labels arriving."""
        start, self.now = self.now, self.now + seconds
        rng = np.random.default_rng([self.seed, self.tick])
        self.tick += 1
        n = self.requests_per_tick
        truth, uniform, noise = rng.uniform(0.3, 0.7, n), rng.random(n), rng.normal(0, 1, n)
        failing, jitter = rng.random(n), rng.exponential(5.0, n)
        labels = (uniform < truth).astype(int)
        arms = read_rollout(self.engine, self.domain).arms
        records = []
        for i in range(n):
            request_id = f"{self.seed}-{self.tick}-{i}"
            arm = route(request_id, arms)
            model = self.behaviours[arm.version]
            failed = failing[i] < model.error_rate
            score = None if failed else float(np.clip(truth[i] + model.noise * noise[i], 0.02, 0.98))
            at = start + seconds * (i + 1) / (n + 1)
            error = "timeout" if failed else None
            latency = model.latency_ms + jitter[i]
            records.append(
                PredictionRecord(request_id, self.domain, arm.variant, arm.version, score, latency, at, error=error)
            )
        record_predictions(self.engine, records)
        record_feedback(self.engine, self.domain, self.unlabelled, received_at=self.now, key_id="labeller-a")
        self.unlabelled = [(r.request_id, int(label)) for r, label in zip(records, labels, strict=True) if r.score]

    @property
    def handles(self) -> DomainModel:
        return DomainModel(domain=self.domain, name=self.model, tracking_uri=self.tracking_uri, engine=self.engine)

    @property
    def timer(self) -> Clock:
        return Clock(now=self.clock, sleep=self.sleep)

    def run(self, holder: str = "controller-a", sleep=None, on_decision=None, plan: CanaryConfig = PLAN):
        clock = Clock(now=self.clock, sleep=sleep or self.sleep)
        return run_promotion(self.handles, "2", plan, actor=holder, clock=clock, on_decision=on_decision,
                             holder=holder)  # fmt: skip

    def aliases(self) -> dict[str, str | None]:
        client = MlflowClient(self.tracking_uri)
        return {alias: current_alias_version(client, self.model, alias) for alias in ALIASES}

    def outcome(self) -> tuple:
        state = read_promotion(self.engine, self.domain)
        arms = read_rollout(self.engine, self.domain).arms
        return state.status, self.aliases(), arms, [(d["step"], d["action"]) for d in state.decisions]


@pytest.fixture(scope="module")
def logged_runs(mlflow_store, trained_network, learnable_split, schema, tmp_path_factory):
    """Two real training runs with their pyfunc models, logged once for the module."""
    tracking_uri, artifact_root = mlflow_store
    _, validation, pipeline = learnable_split
    model_file = tmp_path_factory.mktemp("variant") / "fp32.pt"
    model_file.write_bytes(build_fp32(trained_network, pipeline.transform(validation)))
    sample = validation[schema.features].head(50)
    scores = trained_network.predict(pipeline, sample)
    return [
        log_run(
            tracking_uri,
            artifact_root,
            RunRecord(
                experiment="canary/EWR",
                run_name="train-EWR",
                run_key=f"canary-{key}",
                params={"domain": DOMAIN},
                metrics={"network_validation_auc": trained_network.best_val_auc},
                tags={f"{TAG}domain": DOMAIN},
                pipeline=pipeline,
                model_file=model_file,
                signature_sample=sample,
                signature_scores=scores,
            ),
        )
        for key in (1, 2)
    ]


_models = itertools.count()


@pytest.fixture
def make_world(mlflow_store, logged_runs, tmp_path):
    """A world: a serving database of its own and a freshly registered model (v1 champion, v2 challenger).

    `shared_registry=True` reuses the test's first such model instead, with champion and challenger put
    back: many replays then cost no registrations.
    """
    tracking_uri, _ = mlflow_store
    shared: list[str] = []
    worlds = itertools.count()

    def register() -> str:
        model = f"canary{next(_models)}-{DOMAIN}"  # a config named canary<n> serves it (registered_model_name)
        # The gates audit into a database of their own: each world's audit then starts at its canary.
        gates = open_database(f"sqlite:///{tmp_path}/gates.db")
        for logged in logged_runs:
            version = register_logged_model(tracking_uri, model, logged, tags={})
            handles = DomainModel(domain=DOMAIN, name=model, tracking_uri=tracking_uri, engine=gates)
            apply_gate_verdict(handles, version, True, "min_test_auc: 0.8100 > 0.6000")
        return model

    def make(behaviours=GOOD, seed: int = 0, shared_registry: bool = False) -> World:
        if shared_registry and shared:
            model = shared[0]
            # The controller always clears `canary`; previous-champion may stay, the controller never reads it.
            client = MlflowClient(tracking_uri)
            for alias, version in ((CHAMPION, "1"), (CHALLENGER, "2")):
                if current_alias_version(client, model, alias) != version:
                    client.set_registered_model_alias(model, alias, version)
        else:
            model = register()
            if shared_registry:
                shared.append(model)
        engine = open_database(f"sqlite:///{tmp_path}/serving-{next(worlds)}.db")
        set_rollout(engine, DOMAIN, model, [Arm("champion", "1", 1.0)], "v1 serves", "deploy")
        return World(engine, tracking_uri, model, DOMAIN, behaviours, seed)

    return make


def test_a_good_canary_ramps_through_every_step_and_is_promoted(make_world):
    world = make_world(GOOD)
    assert world.aliases() == {CHAMPION: "1", CHALLENGER: "2", CANARY: None, PREVIOUS_CHAMPION: None}
    seen = []
    state = world.run(on_decision=lambda state, decision: seen.append((state.step, decision.action)))

    assert state.status == PROMOTED and state.settled
    assert state.reason.startswith("promote: ")
    assert world.aliases() == {CHAMPION: "2", CHALLENGER: None, CANARY: None, PREVIOUS_CHAMPION: "1"}
    assert read_rollout(world.engine, world.domain).arms == (Arm("champion", "2", 1.0),)
    advances = [d for d in state.decisions if d["action"] == "advance"]
    assert [d["step"] for d in advances] == [0, 1, 2, 3]
    assert [d["reason"].split(":")[0] for d in advances] == ["advance to 10%", "advance to 50%", "advance to 100%",
                                                              "promote"]  # fmt: skip
    assert "within the 0.1 margin" in advances[1]["reason"]
    # Each decision says whose labels it rests on, and how many (all from one labeller here, growing).
    labelled = [d["labels_by_key"].get("labeller-a", 0) for d in advances]
    assert set().union(*(d["labels_by_key"] for d in advances)) == {"labeller-a"}
    assert labelled == sorted(labelled) and labelled[-1] > labelled[0] > 0
    summary = summarize_promotion(DOMAIN, build_config({"canary": PLAN.model_dump(mode="json")}), state)
    assert f"labeller-a {labelled[-1]:,}" in summary.to_markdown()
    assert all(sum(d["step"] == s and d["action"] == "hold" for d in state.decisions) <= 1 for s in range(4))
    assert seen[-1] == (3, "advance") and len(seen) > len(state.decisions)

    audit = [(e.action, e.subject, e.before, e.after, e.actor) for e in read_audit(world.engine, world.domain)]
    weights = [(e.after, e.reason) for e in read_audit(world.engine, world.domain) if e.action == "weights"]
    assert [(a, s, b, f) for a, s, b, f, _ in audit if a == "alias"] == [
        ("alias", CANARY, None, "2"),
        ("alias", PREVIOUS_CHAMPION, None, "1"),
        ("alias", CHAMPION, "1", "2"),
        ("alias", CANARY, "2", None),
        ("alias", CHALLENGER, "2", None),
    ]
    assert [[(arm["version"], arm["weight"]) for arm in after] for after, _ in weights] == [
        [("1", 1.0)], [("1", 0.99), ("2", 0.01)], [("1", 0.9), ("2", 0.1)], [("1", 0.5), ("2", 0.5)],
        [("1", 0.0), ("2", 1.0)], [("2", 1.0)],
    ]  # fmt: skip
    assert [reason for _, reason in weights[1:5]] == [f"canary step {i}/4: {w}% to v2" for i, w in
                                                      ((1, 1), (2, 10), (3, 50), (4, 100))]  # fmt: skip
    assert weights[-1][1].startswith("v2: promote: ")
    assert {actor for *_, actor in audit[1:]} == {"controller-a"}
    kinds = [a for a, *_ in audit]
    # The plan first (the domain's first canary), the canary alias before traffic, the rollout last.
    assert kinds.index("rollout_config") == 1 and kinds.index("alias") == 2 and kinds[-1] == "weights"
    assert audit[1][1:4] == ("canary", None, PLAN.model_dump(mode="json"))
    # Each advance is audited with the decision's figures, with the step's weights: the last one promotes.
    steps = [e for e in read_audit(world.engine, world.domain) if e.action == "canary_step"]
    assert [(e.subject, e.before, {k: v for k, v in e.after.items() if k != "figures"}) for e in steps] == [
        ("v2", {"step": 1, "weight": 0.01}, {"step": 2, "weight": 0.1}),
        ("v2", {"step": 2, "weight": 0.1}, {"step": 3, "weight": 0.5}),
        ("v2", {"step": 3, "weight": 0.5}, {"step": 4, "weight": 1.0}),
        ("v2", {"step": 4, "weight": 1.0}, {"status": PROMOTED, "weight": 1.0}),
    ]  # fmt: skip
    assert [(e.reason, e.after["figures"]) for e in steps] == [(d["reason"], d["figures"]) for d in advances]
    assert kinds.index("canary_step") > kinds.index("weights", 2)  # decided after the step's traffic
    assert verify_audit(world.engine).ok

    client = MlflowClient(world.tracking_uri)
    v1, v2 = (client.get_model_version(world.model, v).tags for v in ("1", "2"))
    assert v2[f"{TAG}rollout"] == "promoted"
    assert v2[f"{TAG}alias.{CHAMPION}"].startswith("set ")
    assert "by controller-a: promote: " in v2[f"{TAG}alias.{CHAMPION}"]
    assert v1[f"{TAG}alias.{PREVIOUS_CHAMPION}"].startswith("set ")
    assert v1[f"{TAG}alias.{CHAMPION}"].startswith("removed ")


def test_a_worse_canary_is_rolled_back_early_and_the_champion_is_untouched(make_world):
    world = make_world(WORSE)
    state = world.run()
    assert state.status == ROLLED_BACK and state.step <= 1
    assert "canary's log loss is worse than the champion's" in state.reason
    assert world.aliases() == {CHAMPION: "1", CHALLENGER: None, CANARY: None, PREVIOUS_CHAMPION: None}
    assert read_rollout(world.engine, world.domain).arms == (Arm("champion", "1", 1.0),)
    tags = MlflowClient(world.tracking_uri).get_model_version(world.model, "2").tags
    assert tags[f"{TAG}rollout"] == "rolled_back" and tags[f"{TAG}rollout_reason"] == state.reason
    moves = [(e.subject, e.after) for e in read_audit(world.engine, world.domain) if e.action == "alias"]
    assert moves == [(CANARY, "2"), (CANARY, None), (CHALLENGER, None)]
    # The decision that rolled it back is audited once, with the step it was at and its figures.
    [rollback] = [e for e in read_audit(world.engine, world.domain) if e.action == "rollback"]
    assert (rollback.subject, rollback.reason, rollback.actor) == ("v2", state.reason, "controller-a")
    assert rollback.before == {"step": state.step + 1, "weight": PLAN.steps[state.step].weight}
    assert rollback.after == {"status": ROLLED_BACK, "weight": 0.0, "figures": state.decisions[-1]["figures"]}


@pytest.mark.parametrize(
    ("canary", "words"),
    [
        (Behaviour(latency_ms=150.0), "x the champion's"),
        (Behaviour(latency_ms=400.0), "exceeds the 200 ms limit"),
        (Behaviour(error_rate=0.2), "error rate"),
    ],
    ids=["latency ratio", "latency limit", "errors"],
)
def test_a_canary_breaching_a_guardrail_is_rolled_back_at_the_first_step(make_world, canary, words):
    world = make_world({"1": Behaviour(), "2": canary})
    state = world.run()
    assert (state.status, state.step) == (ROLLED_BACK, 0)
    assert state.reason.startswith("roll back at 1%: canary ") and words in state.reason
    assert world.aliases()[CHAMPION] == "1"
    assert read_rollout(world.engine, world.domain).arms == (Arm("champion", "1", 1.0),)


def test_replays_never_promote_the_worse_canary_and_seldom_roll_back_the_good_one(make_world, monkeypatch):
    """20 seeded replays of each canary through the real loop, rollout and log.

    The registry's alias moves are recorded instead of made (they are covered above and cost
    more than the whole loop); the champion is read from the real registry.
    """
    from domainflow.canary import controller

    ends = []
    monkeypatch.setattr(controller, "move_alias", lambda *args, **kwargs: True)
    monkeypatch.setattr(controller, "promote", lambda *args, **kwargs: ends.append("promote"))
    monkeypatch.setattr(controller, "roll_back", lambda *args, **kwargs: ends.append("roll_back"))
    outcomes = {"good": [], "worse": []}
    for seed in range(20):
        for name, behaviours in (("good", GOOD), ("worse", WORSE)):
            state = make_world(behaviours, seed=seed, shared_registry=True).run()
            outcomes[name].append((state.status, state.step))
    assert [status for status, _ in outcomes["worse"]] == [ROLLED_BACK] * 20
    assert max(step for _, step in outcomes["worse"]) <= 1
    good = [status for status, _ in outcomes["good"]]
    assert good.count(ROLLED_BACK) <= 1 and good.count(PROMOTED) >= 19
    assert ends.count("promote") == good.count(PROMOTED)


def _crash_after(world: World, k: int):
    """A sleep hook that kills the controller at its k-th sleep, before any of that tick's traffic."""
    calls = itertools.count(1)

    def sleep(seconds: float) -> None:
        if next(calls) == k:
            raise Crash(f"killed after {k} sleeps")
        world.sleep(seconds)

    return sleep


@pytest.mark.parametrize("behaviours", [GOOD, WORSE], ids=["good", "worse"])
def test_a_killed_controller_resumed_by_another_ends_where_an_uninterrupted_one_does(make_world, behaviours):
    reference = make_world(behaviours, seed=3, shared_registry=True)
    reference.run()
    expected = reference.outcome()
    for k in sorted({1, 2, reference.tick // 2, reference.tick}):  # the reference slept `tick` times
        world = make_world(behaviours, seed=3, shared_registry=True)
        with pytest.raises(Crash):
            world.run(holder="controller-a", sleep=_crash_after(world, k))
        with pytest.raises(PromotionConflict, match="held by controller-a"):
            world.run(holder="controller-b")  # the dead one's lease has not run out yet
        world.now += PLAN.lease_seconds + 1
        state = world.run(holder="controller-b")
        assert world.outcome() == expected, f"killed after {k} sleeps"
        assert state.holder == "controller-b"


SIDE_EFFECTS = ("write_canary_rollout", "set_rollout", "move_alias", "promote", "roll_back", "save_state",
                "mark_settled")  # fmt: skip


def test_a_controller_killed_right_after_any_side_effect_is_completed_by_the_next(make_world, monkeypatch):
    """Kill after each state-changing call (rollout, alias, saved step or status), restart, compare."""
    from domainflow.canary import controller
    from domainflow.registry import aliases

    calls: list[str] = []
    kill_at = [None]

    def wrap(module, name):
        real = getattr(module, name)

        def effect(*args, **kwargs):
            result = real(*args, **kwargs)
            label = name
            if name == "save_state":
                label = f"save_state {args[4]} {args[3].step}"
            elif name == "set_rollout":
                label = f"set_rollout {[(arm.version, arm.weight) for arm in args[3]]}"
            elif name == "write_canary_rollout":
                label = f"write_canary_rollout {[(arm.version, arm.weight) for arm in args[4]]}"
            elif name == "move_alias":
                label = f"move_alias {args[1]} -> {args[2]}"
            calls.append(label)
            if len(calls) == kill_at[0]:
                raise Crash(f"killed after {label}")
            return result

        monkeypatch.setattr(module, name, effect)

    for name in SIDE_EFFECTS:
        wrap(controller, name)
    wrap(aliases, "move_alias")  # the moves inside promote() and roll_back()

    reference = make_world(GOOD, seed=5, shared_registry=True)
    calls.clear()  # registering the shared model gated its versions (alias moves): only the run's calls count
    reference.run()
    expected = reference.outcome()
    changes = [i + 1 for i, label in enumerate(calls) if label not in calls[:i]]  # first time each change happens
    assert len(changes) >= 12
    for index in changes:
        calls.clear()
        kill_at[0] = index
        world = make_world(GOOD, seed=5, shared_registry=True)
        with pytest.raises(Crash):
            world.run(holder="controller-a")
        kill_at[0] = None
        world.now += PLAN.lease_seconds + 1
        world.run(holder="controller-b")
        assert world.outcome() == expected, f"killed after call {index}: {calls[-1]}"


def test_a_second_promotion_of_the_domain_is_refused_naming_the_holder(make_world):
    world = make_world(GOOD)
    refusals = []

    def sleep(seconds: float) -> None:
        if not refusals:
            with pytest.raises(PromotionConflict) as refused:
                world.run(holder="controller-b")
            refusals.append(str(refused.value))
        world.sleep(seconds)

    assert world.run(holder="controller-a", sleep=sleep).status == PROMOTED
    assert "promotion of EWR v2 is held by controller-a" in refusals[0]


def test_a_rerun_after_the_end_changes_nothing(make_world):
    world = make_world(WORSE)
    first = world.run()
    audit, rollout = read_audit(world.engine, world.domain), read_rollout(world.engine, world.domain)

    def no_sleep(_):
        raise AssertionError("a finished promotion must not poll")

    again = world.run(holder="controller-b", sleep=no_sleep)
    assert again == first
    assert read_audit(world.engine, world.domain) == audit and read_rollout(world.engine, world.domain) == rollout


def test_an_abort_sends_traffic_back_to_the_champion_and_stops_the_controller(make_world):
    world = make_world(GOOD)

    def sleep(seconds: float) -> None:
        world.sleep(seconds)
        if world.tick == 3:
            abort_promotion(world.handles, "ops", "pager", clock=world.timer)

    state = world.run(sleep=sleep)
    assert (state.status, state.reason) == (ABORTED, "aborted by ops: pager")
    assert state.decisions[-1]["action"] == "abort" and state.settled
    assert world.tick == 3  # the controller stopped at its next heartbeat
    assert world.aliases() == {CHAMPION: "1", CHALLENGER: None, CANARY: None, PREVIOUS_CHAMPION: None}
    assert read_rollout(world.engine, world.domain).arms == (Arm("champion", "1", 1.0),)
    assert [e.actor for e in read_audit(world.engine, world.domain)[-3:]] == ["ops"] * 3
    [rollback] = [e for e in read_audit(world.engine, world.domain) if e.action == "rollback"]
    assert (rollback.subject, rollback.reason, rollback.actor) == ("v2", "aborted by ops: pager", "ops")
    assert rollback.before == {"status": "running", "step": state.step + 1}
    assert rollback.after == {"status": ABORTED, "champion": "1"}

    # An abort is not a verdict: set as challenger again, the version gets a fresh canary, here under a
    # changed plan, which the audit log shows beside the one it replaces.
    MlflowClient(world.tracking_uri).set_registered_model_alias(world.model, CHALLENGER, "2")
    patient = PLAN.model_copy(update={"poll_seconds": 4})
    again = world.run(holder="controller-b", plan=patient)
    assert again.status == PROMOTED and again.started_at > state.started_at
    assert world.aliases()[CHAMPION] == "2"
    first, changed = [e for e in read_audit(world.engine, world.domain) if e.action == "rollout_config"]
    assert (changed.before, changed.after) == (first.after, patient.model_dump(mode="json"))
    assert (changed.reason, changed.actor) == ("v2's canary runs under a changed plan", "controller-b")
    assert verify_audit(world.engine).ok


def test_monitorings_live_quality_gate_rolls_a_running_canary_back_as_final(make_world):
    world = make_world(GOOD)

    def sleep(seconds: float) -> None:
        world.sleep(seconds)
        if world.tick == 2:
            roll_back_promotion(world.handles, "monitor", "live quality gate: the canary failed RocAuc",
                                clock=world.timer)  # fmt: skip

    state = world.run(sleep=sleep)
    assert (state.status, state.reason) == (ROLLED_BACK, "live quality gate: the canary failed RocAuc")
    assert state.decisions[-1]["action"] == "rollback" and state.settled
    [rollback] = [e for e in read_audit(world.engine, world.domain) if e.action == "rollback"]
    assert (rollback.reason, rollback.actor, rollback.after["status"]) == (state.reason, "monitor", ROLLED_BACK)
    assert world.aliases() == {CHAMPION: "1", CHALLENGER: None, CANARY: None, PREVIOUS_CHAMPION: None}
    assert read_rollout(world.engine, world.domain).arms == (Arm("champion", "1", 1.0),)
    # Unlike an abort, a rollback is a verdict: the version is not canaried again.
    MlflowClient(world.tracking_uri).set_registered_model_alias(world.model, CHALLENGER, "2")
    again = world.run(holder="controller-b")
    assert (again.status, again.started_at) == (ROLLED_BACK, state.started_at)
    assert read_rollout(world.engine, world.domain).arms == (Arm("champion", "1", 1.0),)


def test_a_canary_needs_a_registered_version_and_a_champion_to_judge_it_against(make_world):
    world = make_world(GOOD)
    with pytest.raises(PromotionError, match=f"{world.model} has no version 7; register it before its canary"):
        run_promotion(world.handles, "7", PLAN, actor="cli")
    with pytest.raises(PromotionError, match="v1 is already the champion"):
        run_promotion(world.handles, "1", PLAN, actor="cli")
    MlflowClient(world.tracking_uri).delete_registered_model_alias(world.model, CHAMPION)
    with pytest.raises(PromotionError, match="has no champion.*becomes champion through the quality gates"):
        world.run()
    assert read_promotion(world.engine, world.domain) is None


def test_an_operators_rollback_through_the_admin_api_ends_the_canary_and_stands(make_world, mlflow_store, tmp_path):
    """Mid-canary, an operator rolls back through the real server; the running controller must not undo it."""
    world = make_world(GOOD)
    config = build_config({"name": world.model.removesuffix(f"-{DOMAIN}"), "domains": {"values": [DOMAIN]},
                           "serving": {"refresh_seconds": 0.1}})  # fmt: skip
    settings = Settings(home=tmp_path, tracking_uri=world.tracking_uri, artifact_root=mlflow_store[1],
                        database_url=str(world.engine.url), admin_token="ops-token")  # fmt: skip
    seen = {}

    with serve_in_background(create_app(config, settings)) as url, httpx.Client(base_url=url, timeout=60) as client:

        def sleep(seconds: float) -> None:
            world.sleep(seconds)
            if world.tick == 3:  # the canary has had traffic; the controller looks again after this
                seen["canary weight"] = read_rollout(world.engine, DOMAIN).weight_of("canary")
                seen["answer"] = client.post(f"/admin/rollouts/{DOMAIN}/rollback", json={"reason": "pager: checkout"},
                                             headers={"Authorization": "Bearer ops-token"})  # fmt: skip
                # At once, before the controller looks again: the promotion is over, its aliases gone.
                seen["promotion"], seen["aliases"] = read_promotion(world.engine, DOMAIN), world.aliases()

        state = world.run(sleep=sleep)

    assert seen["canary weight"] > 0 and seen["answer"].status_code == 200
    assert _arms(seen["answer"].json()) == [("champion", "1", 1.0)]
    ended = "ended by operator admin-token: pager: checkout"
    assert (seen["promotion"].status, seen["promotion"].reason, seen["promotion"].settled) == (ABORTED, ended, True)
    assert seen["aliases"] == {CHAMPION: "1", CHALLENGER: None, CANARY: None, PREVIOUS_CHAMPION: None}
    assert (state.status, state.reason, state.settled) == (ABORTED, ended, True)
    assert state.decisions[-1]["action"] == OPERATOR and state.holder == "admin-token"
    assert world.tick == 3  # the controller stopped at its next look, without writing

    # The operator's rollout is the last word: no weights written after it, all traffic to v1 over further looks.
    weights = [e for e in read_audit(world.engine, DOMAIN) if e.action == "weights"]
    assert (weights[-1].actor, weights[-1].reason, weights[-1].after) == (
        "admin-token", "pager: checkout", [{"variant": "champion", "version": "1", "weight": 1.0}]
    )  # fmt: skip
    moves = [(e.subject, e.after, e.actor) for e in read_audit(world.engine, DOMAIN) if e.action == "alias"]
    assert moves[-2:] == [(CANARY, None, "admin-token"), (CHALLENGER, None, "admin-token")]
    # Its controller's task retried (as Prefect does once) does not start the canary again.
    world.now += PLAN.lease_seconds + 1
    assert world.run(holder="controller-b") == read_promotion(world.engine, DOMAIN)
    for _ in range(3):
        world.sleep(PLAN.poll_seconds)
    assert read_rollout(world.engine, DOMAIN).arms == (Arm("champion", "1", 1.0),)
    assert world.aliases() == {CHAMPION: "1", CHALLENGER: None, CANARY: None, PREVIOUS_CHAMPION: None}
    assert [e for e in read_audit(world.engine, DOMAIN) if e.action == "weights"] == weights


def _arms(view: dict) -> list[tuple]:
    return [(a["variant"], a["version"], a["weight"]) for a in view["arms"]]


def test_a_rollout_changed_behind_the_controllers_back_ends_its_promotion_instead_of_being_overwritten(make_world):
    """Not through the admin API (a script, `experiment start`): the controller finds out at its next write."""
    world = make_world(GOOD)
    by_hand = (Arm("champion", "1", 0.7), Arm("canary", "2", 0.3))

    def sleep(seconds: float) -> None:
        world.sleep(seconds)
        if world.tick == 2:
            set_rollout(world.engine, DOMAIN, world.model, by_hand, "hold v2 at 30% for the sale", "ops-script")

    state = world.run(sleep=sleep)
    assert (state.status, state.reason) == (ABORTED, "ended by operator ops-script: hold v2 at 30% for the sale")
    assert state.decisions[-1]["action"] == OPERATOR and state.settled
    assert read_rollout(world.engine, DOMAIN).arms == by_hand  # the operator's weights stand
    assert world.aliases() == {CHAMPION: "1", CHALLENGER: None, CANARY: None, PREVIOUS_CHAMPION: None}
    assert [e.actor for e in read_audit(world.engine, DOMAIN) if e.action == "weights"][-1] == "ops-script"
