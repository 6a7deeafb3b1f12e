from __future__ import annotations

import json
from dataclasses import replace

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from domainflow.candidates.gate import evaluate_candidate
from domainflow.config import PipelineConfig, build_config
from domainflow.data.prepared import DomainData
from domainflow.tracking import (
    code_version,
    lifecycle_key,
    log_training_run,
    public_gx_result,
    training_run_key,
    version_tags,
)

GX_RESULT = {
    "success": False,
    "results": [
        {
            "success": False,
            "expectation_config": {"type": "expect_column_values_to_be_between", "kwargs": {"column": "humid"}},
            "result": {
                "element_count": 40,
                "unexpected_count": 1,
                "unexpected_percent": 2.5,
                "missing_count": 0,
                "partial_unexpected_list": [150.0],
                "partial_unexpected_counts": [{"value": 150.0, "count": 1}],
                "partial_unexpected_index_list": [1],
                "observed_value": 150.0,
                "details": "kept",
            },
        }
    ],
    "statistics": {"evaluated_expectations": 30, "successful_expectations": 29, "success_percent": 96.7},
}


def test_public_gx_result_drops_counts_and_values():
    public = public_gx_result(GX_RESULT)
    text = json.dumps(public)
    for private in ("element_count", "unexpected_count", "partial_unexpected_list", "observed_value", "150.0"):
        assert private not in text
    assert public["results"][0]["result"] == {"details": "kept"}
    assert public["results"][0]["expectation_config"]["kwargs"]["column"] == "humid"
    assert public["statistics"] == {"success_percent": 96.7}
    assert public["success"] is False
    # The input is left alone.
    assert GX_RESULT["results"][0]["result"]["element_count"] == 40


def test_code_version_is_stable_and_versioned():
    first = code_version()
    assert first == code_version()
    version, digest = first.split("+")
    assert version == "0.1.0" and len(digest) == 12


def test_run_key_depends_on_every_input():
    config = PipelineConfig()
    key = training_run_key("EWR", "sha256:abc", config)
    assert key == training_run_key("EWR", "sha256:abc", PipelineConfig())
    assert key != training_run_key("JFK", "sha256:abc", config)
    assert key != training_run_key("EWR", "sha256:abd", config)
    assert key != training_run_key("EWR", "sha256:abc", build_config({"training": {"seed": 1}}))
    # How the model is judged, rolled out and monitored does not change the model: same run, same version.
    judged = build_config({"gate": {"min_test_auc": 0.7}, "canary": {"alpha": 0.01}})
    assert key == training_run_key("EWR", "sha256:abc", judged)
    # The lifecycle, though, is keyed on them all: a changed gate or canary runs it again.
    assert lifecycle_key("EWR", "sha256:abc", judged) != lifecycle_key("EWR", "sha256:abc", config)


@pytest.fixture(scope="module")
def domain_run(domain_candidates, mlflow_store, tmp_path_factory):
    """One domain's stages on synthetic rows, gated and logged the way the flow does it."""
    c = domain_candidates
    report = tmp_path_factory.mktemp("reports") / "classification.html"
    evaluation = evaluate_candidate(mlflow_store[0], "flight-delay-EWR", c.config, c.split, c.candidate, report)
    data = DomainData(domain="EWR", source_fingerprint="sha256:synthetic", validation=c.outcome, split=c.split)
    args = (mlflow_store[0], mlflow_store[1], c.config, data, c.candidate, evaluation)
    logged = log_training_run(*args)
    return dict(args=args, logged=logged, outcome=c.outcome, split=c.split, config=c.config, evaluation=evaluation)


def test_logged_counts_are_private(domain_run, mlflow_store):
    metrics = MlflowClient(mlflow_store[0]).get_run(domain_run["logged"].run_id).data.metrics
    sizes = domain_run["split"].sizes()
    exact = {
        "rows_in": domain_run["outcome"].rows_in,
        "train_rows": sizes["train"],
        "validation_rows": sizes["validation"],
        "test_rows": sizes["test"],
    }
    for name in exact:
        assert name not in metrics
        assert f"dp_{name}" in metrics
    assert any(metrics[f"dp_{name}"] != value for name, value in exact.items())
    assert 0 <= metrics["dp_train_label_rate"] <= 1
    assert metrics["privacy_epsilon_spent"] == pytest.approx(0.7)
    assert "network_validation_auc" in metrics and "gradient_boosting_test_auc" in metrics


def test_logged_documents_hold_no_row_level_counts(domain_run, mlflow_store):
    artifact_uri = MlflowClient(mlflow_store[0]).get_run(domain_run["logged"].run_id).info.artifact_uri
    gx = mlflow.artifacts.load_dict(f"{artifact_uri}/validation/great_expectations.json")
    assert gx["results"] and "element_count" not in json.dumps(gx)
    ledger = mlflow.artifacts.load_dict(f"{artifact_uri}/privacy/ledger.json")
    assert ledger["spent"] <= ledger["budget"] == 1.0
    assert {r["statistic"] for r in ledger["releases"]} >= {"rows_in", "train_label_rate:numerator"}
    config = mlflow.artifacts.load_dict(f"{artifact_uri}/config.json")
    assert config["training"]["max_epochs"] == 1


def test_the_run_holds_the_study_the_variants_and_the_verdict(domain_run, domain_candidates, mlflow_store):
    client = MlflowClient(mlflow_store[0])
    run = client.get_run(domain_run["logged"].run_id)
    evaluation = domain_run["evaluation"]
    chosen = domain_candidates.candidate.family(evaluation.family)
    assert run.data.tags["domainflow.family"] == evaluation.family
    assert run.data.tags["domainflow.served_variant"] == chosen.model.variant
    assert run.data.metrics["tuning_trials"] == 2
    assert run.data.params["final.hidden_sizes"] == str(domain_candidates.network.hparams["hidden_sizes"])
    for name in domain_candidates.config.optimization.variants:
        assert f"variant_{name}_size_bytes" in run.data.metrics
    verdict = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/evaluation/gate_verdict.json")
    assert verdict["reference"].startswith("baseline (HistGradientBoosting)")
    assert verdict["window"].startswith("test 2013-08-01 to 2013-09-01")
    assert [c["name"] for c in verdict["checks"]][:3] == ["calibration_fit", "min_validation_auc", "min_test_auc"]
    families = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/evaluation/families.json")
    assert families["family"] == evaluation.family and set(families["families"]) == {"network", "gradient_boosting"}
    assert run.data.metrics["gate_passed"] == float(domain_run["evaluation"].verdict.passed)
    html = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/classification.html" in html
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert sorted(c.info.run_name for c in children) == ["trial-0", "trial-1"]


@pytest.mark.parametrize("family", ["network", "gradient_boosting"])
def test_the_registered_model_serves_either_family_calibrated(family, domain_run, domain_candidates, mlflow_store,
                                                              monkeypatch):  # fmt: skip
    """Whichever family the gates choose is logged, loaded through pyfunc and served with its calibration map."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store[0])
    c = domain_candidates
    tracking_uri, artifact_root, config, data, candidate, evaluation = domain_run["args"]
    chosen = replace(evaluation, family=family)
    logged = log_training_run(tracking_uri, artifact_root, config, replace(data, domain=f"EWR-{family}"), candidate,
                              chosen)  # fmt: skip
    model = mlflow.pyfunc.load_model(logged.model_uri)
    rows = c.split.test[c.config.data.features].astype(dict.fromkeys(c.config.data.numeric_features, "float64"))
    features = c.pipeline.transform(rows)
    served, raw = candidate.family(family).predictor(), candidate.family(family).model.predictor()
    np.testing.assert_allclose(np.asarray(model.predict(rows)), served.predict(features), rtol=1e-5, atol=1e-6)
    assert candidate.family(family).calibration.fitted
    assert not np.allclose(served.predict(features), raw.predict(features)), "the map changed nothing"
    run = MlflowClient(tracking_uri).get_run(logged.run_id)
    assert run.data.tags["domainflow.family"] == family
    assert run.data.tags["domainflow.calibration"] == candidate.family(family).calibration.method
    artifacts = {a.path for a in MlflowClient(tracking_uri).list_artifacts(logged.run_id, f"calibration/{family}")}
    assert f"calibration/{family}/reliability.png" in artifacts
    assert f"{family}_calibration_ece_after" in run.data.metrics


def test_run_carries_version_tags(domain_run, mlflow_store):
    tags = MlflowClient(mlflow_store[0]).get_run(domain_run["logged"].run_id).data.tags
    expected = version_tags("EWR", "sha256:synthetic", domain_run["config"], domain_run["outcome"]).as_tags()
    assert {k: tags[k] for k in expected} == expected
    assert tags["domainflow.code_version"] == code_version()


def test_logging_the_same_domain_run_again_reuses_it(domain_run):
    again = log_training_run(*domain_run["args"])
    assert again.reused and again.run_id == domain_run["logged"].run_id


def test_a_trainings_start_and_end_are_audited_under_its_key_by_dates_and_scores(domain_candidates, tmp_path):
    from domainflow.store.audit import AuditTrail, read_audit, verify_audit
    from domainflow.store.database import open_database
    from domainflow.tracking import record_training_ended, record_training_started

    c = domain_candidates
    data = DomainData(domain="EWR", source_fingerprint="sha256:synthetic", validation=c.outcome, split=c.split)
    engine = open_database(f"sqlite:///{tmp_path}/state.db")
    trail = AuditTrail(engine, "EWR", "prefect-flow-run/1234")

    record_training_started(trail, data, c.config)
    record_training_ended(trail, data, c.config, c.candidate)

    started, ended = read_audit(engine, "EWR")
    key = training_run_key("EWR", data.trained_on, c.config)
    assert (started.action, ended.action) == ("training_started", "training_ended")
    assert started.subject == ended.subject == key
    assert started.actor == ended.actor == "prefect-flow-run/1234"
    assert started.after["model"] == "flight-delay-EWR" and started.after["model_hash"] == c.config.model_hash()
    assert started.after["windows"] == c.config.split.model_dump(mode="json")
    assert "test to 2013-09-01" in started.reason
    # Dates, not row counts: exact counts stay out of what leaves the process.
    assert str(len(c.split.train)) not in json.dumps(started.after)
    test_auc = c.candidate.scores.network["test"]["auc"]
    assert ended.after["auc"]["network"]["test"] == pytest.approx(test_auc, abs=1e-6)
    assert set(ended.after["auc"]) == {"network", "gradient_boosting"}
    assert ended.after["network_epochs"] == c.candidate.network.epochs_run
    assert "network (test AUC" in ended.reason
    assert verify_audit(engine).ok
