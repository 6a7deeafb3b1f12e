"""The default gates on a full airport: a worse challenger is stopped, a same-quality retrain gets through.

Real data (EWR, ~10k test rows) and the default gate thresholds, so the
statistics have the power they have in production; tuning is off and the
epochs are few to keep it to a couple of minutes.
"""

from __future__ import annotations

import dataclasses

import pytest
from mlflow import MlflowClient

from domainflow.config import build_config
from domainflow.data.validation import LABEL_COLUMN
from domainflow.flows.training import train_domain_model
from domainflow.settings import resolve_settings
from domainflow.training import candidates

pytestmark = pytest.mark.slow


def _config(seed: int):
    return build_config({
        "domains": {"values": ["EWR"]},
        "training": {"max_epochs": 3, "seed": seed},
        "tuning": {"n_trials": 0},
        "optimization": {"latency_repeats": 20},
        "privacy": {"seed": 0},
    })  # fmt: skip


def _trained_on_shuffled_labels(real_fit_network):
    def fit(pipeline, split, config, work_root=None, tuning=None):
        shuffled = split.train[LABEL_COLUMN].sample(frac=1.0, random_state=0).to_numpy()
        split = dataclasses.replace(split, train=split.train.assign(**{LABEL_COLUMN: shuffled}))
        return real_fit_network(pipeline, split, config, work_root, tuning)

    return fit


def test_a_worse_challenger_is_rejected_and_a_same_quality_retrain_passes(domainflow_home, monkeypatch):
    client = MlflowClient(resolve_settings().tracking_uri)
    champion = train_domain_model("EWR", _config(seed=42))
    assert champion.status == "registered" and set(champion.aliases) == {"champion", "challenger"}

    with monkeypatch.context() as patch:
        patch.setattr(candidates, "fit_network", _trained_on_shuffled_labels(candidates.fit_network))
        state = train_domain_model("EWR", _config(seed=7), return_state=True)
    worse = state.result()

    assert state.is_completed() and state.name == "Rejected"
    assert f"EWR v{worse.version} rejected" in state.message and "non_inferiority" in state.message
    assert worse.gate_reference == f"champion v{champion.version}"
    assert {"non_inferiority", "min_test_auc", "slice_regression"} <= set(worse.failed_checks)
    version = client.get_model_version(worse.model_name, worse.version)
    assert version.tags["domainflow.gate"] == "failed" and version.aliases == []
    assert "non_inferiority" in version.tags["domainflow.gate_failed_checks"].split(",")

    retrain = train_domain_model("EWR", _config(seed=8))

    assert retrain.status == "registered", retrain.gate
    assert retrain.gate_reference == f"champion v{champion.version}"
    assert retrain.aliases == ["challenger"]
    model = client.get_registered_model(retrain.model_name)
    aliases = {alias: str(version) for alias, version in model.aliases.items()}
    assert aliases == {"champion": champion.version, "challenger": retrain.version}
    verdict = client.get_run(retrain.run_id).data.metrics
    assert verdict["gate_non_inferiority_passed"] == 1.0
    assert verdict["gate_non_inferiority_lower"] > -0.01
