"""Canary promotion on real HTTP: the EWR story's challengers under the held-out months as live traffic.

The server runs in this process on a free port; the promotion flow replays Sep-Dec 2013
to it and the controller judges the canary on the prediction log, as in `domainflow run`.
"""

from __future__ import annotations

import httpx
import pytest
from mlflow import MlflowClient

from domainflow.canary.state import read_promotion
from domainflow.flows.promotion import promote_challenger
from domainflow.serving.app import create_app
from domainflow.serving.audit import read_audit
from domainflow.serving.database import open_database
from domainflow.serving.rollouts import read_rollout
from domainflow.serving.server import serve_in_background
from domainflow.settings import resolve_settings

from .conftest import ewr_config

pytestmark = pytest.mark.slow

# No bake time (the replay runs faster than real time), the default sample counts and statistics.
CANARY = {"canary": {"steps": [{"weight": 0.01, "min_samples": 50},
                               {"weight": 0.10, "min_samples": 500, "require_quality": True},
                               {"weight": 0.50, "min_samples": 1000, "require_quality": True},
                               {"weight": 1.00, "min_samples": 100}],
                     "poll_seconds": 0.2},
          "replay": {"feedback_delay_seconds": 0.2},
          "serving": {"refresh_seconds": 0.2}}  # fmt: skip


def _promote(version: str):
    """Set `challenger` on `version` by hand, as a user would in the MLflow UI, and run the promotion flow."""
    settings = resolve_settings()
    config = ewr_config(seed=8, **CANARY)
    name = config.registered_model_name("EWR")
    MlflowClient(settings.tracking_uri).set_registered_model_alias(name, "challenger", version)
    with serve_in_background(create_app(config, settings)) as url:
        summary = promote_challenger("EWR", config, url)
        serving = httpx.get(f"{url}/rollouts/EWR").json()
    model = MlflowClient(settings.tracking_uri).get_registered_model(name)
    aliases = {alias: str(v) for alias, v in model.aliases.items()}
    return summary, aliases, serving, open_database(settings.database_url)


def test_a_challenger_trained_on_shuffled_labels_is_rolled_back_by_10_percent(ewr_story, ewr_home):
    champion, worse = ewr_story.champion.version, ewr_story.worse.version

    summary, aliases, serving, engine = _promote(worse)

    assert summary.status == "rolled_back", summary
    assert summary.max_weight <= 0.10 and "log loss" in summary.reason
    assert aliases.get("champion") == champion and "canary" not in aliases and "challenger" not in aliases
    assert [(a.variant, a.version, a.weight) for a in read_rollout(engine, "EWR").arms] == [("champion", champion, 1.0)]
    assert serving["revision"] == read_rollout(engine, "EWR").revision
    version = MlflowClient(resolve_settings().tracking_uri).get_model_version(summary.model_name, worse)
    assert (
        version.tags["domainflow.rollout"] == "rolled_back" and "log loss" in version.tags["domainflow.rollout_reason"]
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
