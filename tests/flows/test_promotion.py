"""Canary promotion on real HTTP: the EWR story's challengers under the held-out months as live traffic.

The server runs in this process on a free port; the promotion flow replays Sep-Dec 2013
to it and the controller judges the canary on the prediction log, as in `domainflow run`.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from mlflow import MlflowClient

from domainflow.access.keys import create_key
from domainflow.canary.controller import Clock, run_promotion
from domainflow.flows.promotion import promote_challenger
from domainflow.registry.domain_model import DomainModel
from domainflow.serving.app import create_app
from domainflow.serving.routing import route
from domainflow.serving.server import serve_in_background
from domainflow.settings import resolve_settings
from domainflow.store.audit import read_audit
from domainflow.store.database import open_database
from domainflow.store.prediction_log import PredictionRecord, record_feedback, record_predictions
from domainflow.store.promotions import read_promotion
from domainflow.store.rollouts import read_rollout

from ..conftest import replay_keys
from .conftest import ewr_config, isolate_home

# The EWR story is trained once per test process: its tests share one pytest-xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ewr-story")]

# No bake time (the replay runs faster than real time), the default sample counts and statistics.
CANARY = {"canary": {"steps": [{"weight": 0.01, "min_samples": 50},
                               {"weight": 0.10, "min_samples": 500, "require_quality": True},
                               {"weight": 0.50, "min_samples": 1000, "require_quality": True},
                               {"weight": 1.00, "min_samples": 100}],
                     "poll_seconds": 0.2,
                     # These canaries are judged on quality; the latency guardrails have their own tests
                     # (tests/unit/canary). Served in the test process, beside other tests' trainings on two
                     # loaded cores, a model call caught behind a full GC of that heap took 337 ms against
                     # the 250 ms ceiling, and p95s of a few ms spiked to 33 ms against the champion's 10:
                     # either rolled a good retrain back in a CI run. Both guardrails are lifted here.
                     "max_p95_latency_ms": 10_000.0, "latency_tolerance_ms": 10_000.0},
          "replay": {"feedback_delay_seconds": 0.2, "rate_limit": None},
          "serving": {"refresh_seconds": 0.2}}  # fmt: skip


def _promote(version: str, override_reason: str | None = None):
    """Set `challenger` on `version` by hand, as a user would in the MLflow UI, and run the promotion flow."""
    settings = resolve_settings()
    config = ewr_config(seed=8, **CANARY)
    name = config.registered_model_name("EWR")
    MlflowClient(settings.tracking_uri).set_registered_model_alias(name, "challenger", version)
    operator = create_key(open_database(settings.database_url), "operator", ["EWR"], "pytest reader", "pytest")
    with replay_keys(settings), serve_in_background(create_app(config, settings)) as url:
        summary = promote_challenger("EWR", config, url, override_reason=override_reason)
        serving = httpx.get(f"{url}/rollouts/EWR", headers={"Authorization": f"Bearer {operator.token}"}).json()
    model = MlflowClient(settings.tracking_uri).get_registered_model(name)
    aliases = {alias: str(v) for alias, v in model.aliases.items()}
    return summary, aliases, serving, open_database(settings.database_url)


def test_a_challenger_set_by_hand_that_failed_its_gates_is_refused_naming_the_checks(ewr_story, ewr_home):
    champion, worse = ewr_story.champion.version, ewr_story.worse.version
    audited = len(read_audit(open_database(resolve_settings().database_url), "EWR"))

    summary, aliases, serving, engine = _promote(worse)

    assert summary.status == "refused" and summary.max_weight == 0.0, summary
    assert f"v{worse} failed its gates (" in summary.reason and "override" in summary.reason
    assert aliases == {"champion": champion, "challenger": worse}  # nothing moved: the operator's alias stays
    assert [(a["variant"], a["version"], a["weight"]) for a in serving["arms"]] == [("champion", champion, 1.0)]
    assert read_rollout(engine, "EWR") is None  # no weight was ever written for it
    assert len(read_audit(engine, "EWR")) == audited
    MlflowClient(resolve_settings().tracking_uri).delete_registered_model_alias(summary.model_name, "challenger")


def test_a_challenger_trained_on_shuffled_labels_is_rolled_back_by_10_percent(ewr_story, ewr_home):
    """The operator overrides the failed gates (audited); the canary still catches the version."""
    champion, worse = ewr_story.champion.version, ewr_story.worse.version

    summary, aliases, serving, engine = _promote(worse, override_reason="see whether the canary catches it")

    assert summary.status == "rolled_back", summary
    assert summary.max_weight <= 0.10 and "log loss" in summary.reason
    assert aliases.get("champion") == champion and "canary" not in aliases and "challenger" not in aliases
    assert [(a.variant, a.version, a.weight) for a in read_rollout(engine, "EWR").arms] == [("champion", champion, 1.0)]
    assert serving["revision"] == read_rollout(engine, "EWR").revision
    version = MlflowClient(resolve_settings().tracking_uri).get_model_version(summary.model_name, worse)
    assert (
        version.tags["domainflow.rollout"] == "rolled_back" and "log loss" in version.tags["domainflow.rollout_reason"]
    )
    assert "see whether the canary catches it" in version.tags["domainflow.gate_override"]
    [override] = [e for e in read_audit(engine, "EWR") if e.action == "gate_override"]
    assert (
        override.subject == f"v{worse}"
        and override.before == "failed"
        and override.actor.startswith("prefect-flow-run/")
    )


def test_a_retrain_as_good_as_the_champion_is_promoted_to_all_traffic(ewr_story, ewr_home):
    old, new = ewr_story.champion.version, ewr_story.retrain.version

    summary, aliases, serving, engine = _promote(new)

    assert summary.status == "promoted", summary
    assert [s.weight for s in summary.steps if s.action == "advance"] == [0.01, 0.10, 0.50, 1.00]
    assert summary.replayed > 0 and summary.labelled > 0
    assert aliases == {"champion": new, "previous-champion": old}
    assert [(a.variant, a.version, a.weight) for a in read_rollout(engine, "EWR").arms] == [("champion", new, 1.0)]
    # Every alias and weight change of this promotion is in the audit log, with the run that made it.
    entries = [e for e in read_audit(engine, "EWR") if e.at >= read_promotion(engine, "EWR").started_at]
    weights = [e.after for e in entries if e.action == "weights"]
    assert [next(a["weight"] for a in arms if a["variant"] == "canary") for arms in weights[:4]] == [
        0.01, 0.10, 0.50, 1.00
    ]  # fmt: skip
    moved = [(e.subject, e.after) for e in entries if e.action == "alias"]
    assert ("champion", new) in moved and ("previous-champion", old) in moved
    assert all(e.actor.startswith("prefect-flow-run/") for e in entries)
    tags = MlflowClient(resolve_settings().tracking_uri).get_model_version(summary.model_name, new).tags
    assert tags["domainflow.rollout"] == "promoted" and "domainflow.alias.champion" in tags


@pytest.fixture(scope="module")
def holdout_scores(ewr_story):
    """Sep-Dec 2013 of EWR with labels, and each version's scores on it through the registry (as served)."""
    import mlflow.pyfunc

    from domainflow.data.domains import filter_domain
    from domainflow.data.sources import load_source
    from domainflow.data.split import split_by_time
    from domainflow.data.validation import LABEL_COLUMN, validate_rows
    from domainflow.registry.mlflow_registry import fluent_tracking_uri

    config = ewr_config(seed=8)
    with pytest.MonkeyPatch.context() as patch:
        isolate_home(patch, ewr_story.home)
        tracking_uri = resolve_settings().tracking_uri
        frame = filter_domain(load_source(config.data.source, config.source_columns()), "origin", "EWR")
        valid = validate_rows(frame, config.data, config.validation).valid
        holdout = split_by_time(valid, config.data.timestamp, LABEL_COLUMN, config.split).holdout
        rows = holdout[config.data.features].astype(dict.fromkeys(config.data.numeric_features, "float64"))
        scores = {}
        for story in (ewr_story.champion, ewr_story.worse, ewr_story.retrain):
            with fluent_tracking_uri(tracking_uri):
                model = mlflow.pyfunc.load_model(f"models:/{story.model_name}/{story.version}")
            scores[story.version] = np.asarray(model.predict(rows), dtype=float)
    return holdout[LABEL_COLUMN].to_numpy(), scores


# Requests between two looks of the controller (one poll interval of the fake clock).
TICK = 2_500


def _replay_promotion(tmp_path, labels, scores, champion: str, version: str, seed: int):
    """One seeded replay of the held-out months into the controller: the real models' scores, the real labels.

    Traffic starts at a random row and request ids carry the seed, so each replay sees another
    stretch of the months routed another way. The fake clock makes a replay take no real time.
    """
    settings = resolve_settings()
    name = "flight-delay-EWR"
    client = MlflowClient(settings.tracking_uri)
    for alias in set(client.get_registered_model(name).aliases) - {"champion"}:
        client.delete_registered_model_alias(name, alias)
    client.set_registered_model_alias(name, "champion", champion)
    client.set_registered_model_alias(name, "challenger", version)
    engine = open_database(f"sqlite:///{tmp_path / f'replay-{version}-{seed}.db'}")
    rng = np.random.default_rng(seed)
    world = {"now": 1e6, "cursor": int(rng.integers(len(labels))), "sent": 0, "owed": []}

    def sleep(seconds: float) -> None:
        start = world["now"]
        world["now"] += seconds
        arms = read_rollout(engine, "EWR").arms
        records = []
        for i in range(TICK):
            row = (world["cursor"] + i) % len(labels)
            request_id = f"{seed}-{world['sent'] + i}"
            arm = route(request_id, arms)
            latency = 4.0 + rng.exponential(1.0)
            score, at = float(scores[arm.version][row]), start + i * seconds / TICK
            records.append(PredictionRecord(request_id, "EWR", arm.variant, arm.version, score, latency, at))
        record_predictions(engine, records)
        record_feedback(engine, "EWR", world["owed"], received_at=world["now"])
        world["owed"] = [
            (r.request_id, int(labels[(world["cursor"] + i) % len(labels)])) for i, r in enumerate(records)
        ]
        world["cursor"] += TICK
        world["sent"] += TICK

    plan = ewr_config(seed=8, **CANARY).canary
    model = DomainModel(domain="EWR", name=name, tracking_uri=settings.tracking_uri, engine=engine)
    clock = Clock(now=lambda: world["now"], sleep=sleep)
    return run_promotion(model, version, plan, actor="seeded-replay", clock=clock, holder=f"replay-{seed}")


def test_twenty_seeded_replays_never_promote_the_worse_and_rarely_roll_back_the_good(
    ewr_story, ewr_home, holdout_scores, tmp_path
):
    labels, scores = holdout_scores
    champion, worse, good = ewr_story.champion.version, ewr_story.worse.version, ewr_story.retrain.version
    try:
        worse_runs = [_replay_promotion(tmp_path, labels, scores, champion, worse, seed) for seed in range(20)]
        good_runs = [_replay_promotion(tmp_path, labels, scores, champion, good, seed) for seed in range(20)]
    finally:  # the registry as the promotion scenario left it
        client = MlflowClient(resolve_settings().tracking_uri)
        client.set_registered_model_alias("flight-delay-EWR", "champion", good)
        client.set_registered_model_alias("flight-delay-EWR", "previous-champion", champion)

    plan = ewr_config(seed=8, **CANARY).canary
    assert all(run.status == "rolled_back" for run in worse_runs)
    assert max(plan.steps[run.step].weight for run in worse_runs) <= 0.10
    good_outcomes = [run.status for run in good_runs]
    assert good_outcomes.count("rolled_back") <= 1 and good_outcomes.count("promoted") >= 19, good_outcomes
