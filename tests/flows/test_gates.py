"""The default gates on a full airport: a worse challenger is stopped, a same-quality retrain gets through.

Real data (EWR, ~10k test rows) and the default gate thresholds, so the
statistics have the power they have in production; tuning is off and the
epochs are few to keep it to a couple of minutes.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from domainflow.settings import resolve_settings

# The EWR story is trained once per test process: its tests share one pytest-xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ewr-story")]


def test_a_worse_challenger_is_rejected_and_a_same_quality_retrain_passes(ewr_story, ewr_home):
    client = MlflowClient(resolve_settings().tracking_uri)
    champion, state, worse, retrain = ewr_story.champion, ewr_story.worse_state, ewr_story.worse, ewr_story.retrain
    assert champion.status == "registered" and set(champion.aliases) == {"champion", "challenger"}

    assert state.is_completed() and state.name == "Rejected"
    assert f"EWR v{worse.version} rejected" in state.message and "non_inferiority" in state.message
    assert worse.gate_reference == f"champion v{champion.version}"
    assert {"non_inferiority", "min_test_auc", "slice_regression"} <= set(worse.failed_checks)
    version = client.get_model_version(worse.model_name, worse.version)
    assert version.tags["domainflow.gate"] == "failed"
    assert "non_inferiority" in version.tags["domainflow.gate_failed_checks"].split(",")

    assert retrain.status == "registered", retrain.gate
    assert retrain.gate_reference == f"champion v{champion.version}"
    assert retrain.aliases == ["challenger"]
    assert ewr_story.aliases_after_training == {"champion": champion.version, "challenger": retrain.version}
    verdict = client.get_run(retrain.run_id).data.metrics
    assert verdict["gate_non_inferiority_passed"] == 1.0
    assert verdict["gate_non_inferiority_lower"] > -0.01
