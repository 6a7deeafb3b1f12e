"""The README's main job: `domainflow run` on the embedded default, all three airports."""

from __future__ import annotations

from collections import Counter

import pytest
from mlflow import MlflowClient

from domainflow.store.audit import read_audit
from domainflow.store.database import open_database

from .test_cli import _run

pytestmark = pytest.mark.slow


def test_default_run_trains_three_airports_and_the_network_keeps_up_with_the_baseline(tmp_path):
    home = tmp_path / "home"
    # Training and the gates only: serving, the canary and the loop are exercised on smaller data elsewhere.
    result = _run(["run", "--no-serve"], home, timeout=900)

    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    for airport in ("EWR", "JFK", "LGA"):
        model = client.get_registered_model(f"flight-delay-{airport}")
        assert set(model.aliases) == {"champion", "challenger"}
        version = client.get_model_version_by_alias(model.name, "champion")
        metrics = client.get_run(version.run_id).data.metrics
        # The reference scenario's promise: the network is within 0.02 test AUC of
        # gradient boosting (seeded; measured gaps are 0.013, -0.004 and 0.006).
        assert metrics["network_test_auc"] >= metrics["gradient_boosting_test_auc"] - 0.02, airport
        # The family registered is the passing one with the higher test AUC (here both pass).
        family = version.tags["domainflow.family"]
        assert metrics[f"{family}_test_auc"] == max(metrics[f"{f}_test_auc"] for f in ("network", "gradient_boosting"))
        # The map is fitted by log loss on its window, where leaving the scores as they are was a choice it had.
        before, after = (metrics[f"{family}_calibration_log_loss_{when}"] for when in ("before", "after"))
        assert after <= before + 1e-9, airport
        assert metrics["network_validation_auc"] > 0.72, airport

    # Every operation the run performed is in the audit log, one row each, and its hash chain holds.
    verified = _run(["audit", "verify"], home, timeout=120)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    assert "chain intact" in verified.stdout
    engine = open_database(f"sqlite:///{home / 'domainflow.db'}")
    for airport in ("EWR", "JFK", "LGA"):
        done = Counter(entry.action for entry in read_audit(engine, airport))
        assert done == {"training_started": 1, "training_ended": 1, "registration": 1, "gate_verdict": 1,
                        "alias": 2}, airport  # fmt: skip
