from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from domainflow.optimization.torch_variants import build_fp32
from domainflow.registry.aliases import apply_gate_verdict
from domainflow.registry.domain_model import DomainModel
from domainflow.registry.integrity import DIGEST_TAG, register_model_version
from domainflow.registry.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    TAG,
    RunRecord,
    current_alias_version,
    log_run,
    register_logged_model,
    registered_again,
    registered_version,
)
from domainflow.store.audit import AuditTrail, read_audit, verify_audit
from domainflow.store.database import open_database

MODEL = "flight-delay-EWR"


@pytest.fixture(scope="module")
def store(mlflow_store):
    return mlflow_store


@pytest.fixture(scope="module")
def make_record(trained_network, learnable_split, schema, tmp_path_factory):
    _, validation, pipeline = learnable_split
    # The served variant: here the FP32 network, as optimization writes it.
    model_file = tmp_path_factory.mktemp("variant") / "fp32.pt"
    model_file.write_bytes(build_fp32(trained_network, pipeline.transform(validation)))
    sample = validation[schema.features].head(200)

    def make(run_key: str, **metrics: float) -> RunRecord:
        return RunRecord(
            experiment="flight-delay/EWR",
            run_name="train-EWR",
            run_key=run_key,
            params={"domain": "EWR", "training.hidden_sizes": [16]},
            metrics={"network_validation_auc": trained_network.best_val_auc, **metrics},
            tags={f"{TAG}domain": "EWR"},
            pipeline=pipeline,
            model_file=model_file,
            signature_sample=sample,
            signature_scores=trained_network.predict(pipeline, sample),
            history=trained_network.history,
            documents={"config.json": {"name": "flight-delay"}, "privacy/ledger.json": {"spent": 0.7}},
        )

    return make


@pytest.fixture(scope="module")
def story(store, make_record):
    """Three runs through log -> register -> gate, as three pipeline runs would do it."""
    tracking_uri, artifact_root = store
    steps = {}
    for step, (key, auc) in {"first": ("key-1", 0.81), "second": ("key-2", 0.83), "failing": ("key-3", 0.55)}.items():
        logged = log_run(tracking_uri, artifact_root, make_record(key))
        version = register_model_version(tracking_uri, MODEL, logged, tags={f"{TAG}run_key": key})
        aliases_before = _aliases(tracking_uri)
        decision = _gate(tracking_uri, MODEL, version, auc)
        steps[step] = dict(logged=logged, version=version, decision=decision,
                           before=aliases_before, after=_aliases(tracking_uri))  # fmt: skip
    return steps


def _gate(tracking_uri: str, name: str, version: str, auc: float):
    """A one-check verdict, as the evaluation gates would hand it over."""
    passed = auc > 0.6
    reason = f"min_test_auc: {auc:.4f} {'>' if passed else '<='} 0.6000"
    engine = open_database(f"sqlite:///{Path(tracking_uri.removeprefix('sqlite:///')).parent}/serving.db")
    model = DomainModel(domain="EWR", name=name, tracking_uri=tracking_uri, engine=engine)
    return apply_gate_verdict(model, version, passed, reason, [] if passed else ["min_test_auc"])


def _aliases(tracking_uri: str) -> dict[str, str | None]:
    client = MlflowClient(tracking_uri)
    return {alias: current_alias_version(client, MODEL, alias) for alias in (CHAMPION, CHALLENGER)}


def test_runs_are_logged_with_params_metrics_history_and_documents(store, story, trained_network):
    tracking_uri, artifact_root = store
    client = MlflowClient(tracking_uri)
    run = client.get_run(story["first"]["logged"].run_id)
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith(artifact_root)
    assert run.data.params["domain"] == "EWR"
    assert run.data.metrics["network_validation_auc"] == pytest.approx(trained_network.best_val_auc)
    assert run.data.tags[f"{TAG}run_key"] == "key-1"
    assert run.data.tags[f"{TAG}domain"] == "EWR"
    history = client.get_metric_history(run.info.run_id, "epoch_val_auc")
    assert sorted(m.step for m in history) == [0, 1, 2]
    assert mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/privacy/ledger.json") == {"spent": 0.7}


def test_first_passing_version_becomes_challenger_and_champion(story):
    first = story["first"]
    assert first["version"] == "1"
    assert first["before"] == {CHAMPION: None, CHALLENGER: None}
    assert first["decision"].passed
    assert set(first["decision"].aliases) == {CHALLENGER, CHAMPION}
    assert first["after"] == {CHAMPION: "1", CHALLENGER: "1"}


def test_second_passing_version_moves_challenger_only(story):
    second = story["second"]
    assert second["version"] == "2"
    assert second["decision"].aliases == [CHALLENGER]
    assert second["after"] == {CHAMPION: "1", CHALLENGER: "2"}


def test_failing_version_gets_no_alias_and_a_reason(store, story):
    failing = story["failing"]
    assert failing["version"] == "3"
    assert not failing["decision"].passed
    assert failing["decision"].aliases == []
    assert failing["after"] == failing["before"] == {CHAMPION: "1", CHALLENGER: "2"}
    version = MlflowClient(store[0]).get_model_version(MODEL, "3")
    assert version.tags[f"{TAG}gate"] == "failed"
    assert version.tags[f"{TAG}gate_reason"] == "min_test_auc: 0.5500 <= 0.6000"
    assert version.tags[f"{TAG}gate_failed_checks"] == "min_test_auc"
    assert version.aliases == []
    passed = MlflowClient(store[0]).get_model_version(MODEL, "1")
    assert passed.tags[f"{TAG}gate"] == "passed"
    assert passed.tags[f"{TAG}run_key"] == "key-1"


def test_a_failing_first_version_leaves_the_domain_without_aliases(store, story):
    name = "flight-delay-floor"
    version = register_logged_model(store[0], name, story["first"]["logged"], tags={})
    decision = _gate(store[0], name, version, 0.6)
    assert not decision.passed and decision.aliases == []
    assert MlflowClient(store[0]).get_registered_model(name).aliases == {}
    assert current_alias_version(MlflowClient(store[0]), name, CHAMPION) is None


def test_same_run_key_reuses_run_and_version(store, story, make_record):
    tracking_uri, artifact_root = store
    again = log_run(tracking_uri, artifact_root, make_record("key-1"))
    first = story["first"]["logged"]
    assert again.reused and not first.reused
    assert again.run_id == first.run_id and again.model_uri == first.model_uri
    assert register_logged_model(tracking_uri, MODEL, again, tags={}) == "1"
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("flight-delay/EWR")
    assert len(client.search_runs([experiment.experiment_id])) == 3
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 3


def test_champion_loads_as_pyfunc_and_predicts_raw_rows(
    store, story, flights_factory, trained_network, learnable_split, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])  # how a serving process names its registry
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    raw = _as_served(flights_factory(30, seed=21), model)
    # Raw rows: the schema's features (numbers as doubles), plus unseen categories and missing values.
    raw.loc[0, "carrier"] = "ZZ"
    raw.loc[1, "temp"] = np.nan
    # Extra columns (origin, the timestamp, the target) are ignored.
    scores = np.asarray(model.predict(raw))
    assert scores.shape == (30,)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    expected = trained_network.predict(learnable_split[2], raw)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_logging_leaves_the_process_tracking_uri_alone(store, make_record, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    log_run(store[0], store[1], make_record("key-env"))
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_a_regated_version_that_now_fails_stops_being_challenger(store, story):
    tracking_uri = store[0]
    assert _aliases(tracking_uri)[CHALLENGER] == "2"
    decision = _gate(tracking_uri, MODEL, "2", 0.55)
    assert not decision.passed
    assert _aliases(tracking_uri)[CHALLENGER] is None
    _gate(tracking_uri, MODEL, "2", 0.7)  # restore for later tests
    assert _aliases(tracking_uri)[CHALLENGER] == "2"


def test_served_rows_may_leave_any_feature_empty(store, story, flights_factory, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    raw = _as_served(flights_factory(5, seed=3), model)
    features = [spec.name for spec in model.metadata.get_input_schema().inputs]
    raw.loc[0, features] = np.nan  # a row with nothing known
    scores = np.asarray(model.predict(raw))
    assert np.isfinite(scores).all()


def _as_served(frame, model):
    """Numbers as doubles, as the signature declares (MLflow will not cast int64 to double)."""
    doubles = [spec.name for spec in model.metadata.get_input_schema().inputs if spec.type.name == "double"]
    return frame.astype(dict.fromkeys(doubles, "float64"))


def test_the_champion_scores_the_candidates_rows_through_its_alias(store, story, flights_factory, trained_network,
                                                                   learnable_split):  # fmt: skip
    from domainflow.registry.champion import score_champion

    rows = flights_factory(40, seed=8)  # raw rows as the split holds them: ints, extra columns
    champion = score_champion(store[0], MODEL, rows)

    assert champion.version == "1" and champion.run_id == story["first"]["logged"].run_id
    np.testing.assert_allclose(champion.scores, trained_network.predict(learnable_split[2], rows), rtol=1e-5)
    assert score_champion(store[0], "flight-delay-nobody", rows) is None


def test_serving_requirements_follow_the_variant_format(tmp_path, trained_network, learnable_split):
    from domainflow.models.pyfunc import serving_requirements
    from domainflow.optimization.onnx_variants import build_onnx_fp32

    features = learnable_split[2].transform(learnable_split[1])
    torch_file = tmp_path / "fp32.pt"
    torch_file.write_bytes(build_fp32(trained_network, features))
    onnx_file = tmp_path / "onnx_fp32.onnx"
    onnx_file.write_bytes(build_onnx_fp32(trained_network, features))

    names = {path: {r.split("==")[0] for r in serving_requirements(path)} for path in (torch_file, onnx_file)}
    assert {"mlflow", "torch", "scikit-learn"} <= names[torch_file]
    assert "onnxruntime" not in names[torch_file] and "torchao" not in names[torch_file]
    assert "onnxruntime" in names[onnx_file]


def test_the_same_verdict_applied_again_moves_nothing_the_loop_moved_since(store, story):
    """A rerun re-applies its stored verdict: v1 passed and became champion; since then v2 replaced it."""
    tracking_uri = store[0]
    name, client = "flight-delay-rerun", MlflowClient(tracking_uri)
    first = register_logged_model(tracking_uri, name, story["first"]["logged"], tags={})
    assert set(_gate(tracking_uri, name, first, 0.81).aliases) == {CHAMPION, CHALLENGER}
    second = register_logged_model(tracking_uri, name, story["second"]["logged"], tags={})
    client.set_registered_model_alias(name, CHAMPION, second)  # the loop's promotion of v2
    client.set_registered_model_alias(name, "previous-champion", first)
    client.delete_registered_model_alias(name, CHALLENGER)

    again = _gate(tracking_uri, name, first, 0.81)

    assert again.unchanged and again.passed and again.aliases == ["previous-champion"]
    assert _aliases_of(client, name) == {CHAMPION: second, "previous-champion": first}
    # A different verdict for the same version (another threshold) is applied as usual.
    changed = _gate(tracking_uri, name, first, 0.55)
    assert not changed.unchanged and not changed.passed
    assert client.get_model_version(name, first).tags[f"{TAG}gate"] == "failed"


def _aliases_of(client: MlflowClient, name: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


def test_a_version_deleted_by_hand_is_registered_again_naming_the_missing_one(store, story):
    tracking_uri, client = store[0], MlflowClient(store[0])
    name, logged = "flight-delay-deleted", story["first"]["logged"]
    assert register_logged_model(tracking_uri, name, logged, tags={}) == "1"
    client.delete_model_version(name, "1")

    again = register_logged_model(tracking_uri, name, logged, tags={})

    assert again == "2" and registered_again(tracking_uri, name, again) == f"{name} v1 is missing from the registry"
    assert register_logged_model(tracking_uri, name, logged, tags={}) == "2"  # and reused from then on


def test_the_version_a_training_registered_is_found_until_it_is_deleted_by_hand(store, make_record):
    """What the training flow asks before it reads its MLflow record from Prefect's cache instead of writing it."""
    tracking_uri, artifact_root = store
    client, name = MlflowClient(tracking_uri), "flight-delay-lookup"
    assert registered_version(tracking_uri, name, "flight-delay/EWR", "key-lookup") is None  # never logged
    logged = log_run(tracking_uri, artifact_root, make_record("key-lookup"))
    assert registered_version(tracking_uri, name, "flight-delay/EWR", "key-lookup") is None  # logged, not registered
    assert register_logged_model(tracking_uri, name, logged, tags={}) == "1"
    assert registered_version(tracking_uri, name, "flight-delay/EWR", "key-lookup") == "1"
    assert registered_version(tracking_uri, name, "no-such-experiment", "key-lookup") is None

    client.delete_model_version(name, "1")

    assert registered_version(tracking_uri, name, "flight-delay/EWR", "key-lookup") is None


def test_a_run_found_again_or_read_from_the_cache_was_logged_before(store, make_record):
    tracking_uri, artifact_root = store
    record = make_record("key-logged-by")
    first = log_run(tracking_uri, artifact_root, replace(record, logged_by="flow-run-a"))
    again = log_run(tracking_uri, artifact_root, replace(record, logged_by="flow-run-b"))
    assert not first.logged_before("flow-run-a")  # logged by this flow run
    assert first.logged_before("flow-run-b")  # the same object, read back from Prefect's cache by another
    assert again.logged_by == "flow-run-a" and again.logged_before("flow-run-b")
    assert MlflowClient(tracking_uri).get_run(first.run_id).data.tags[f"{TAG}logged_by"] == "flow-run-a"


def test_a_registration_and_each_verdict_applied_are_audited_once(store, story, tmp_path):
    tracking_uri, client = store[0], MlflowClient(store[0])
    engine = open_database(f"sqlite:///{tmp_path}/state.db")
    name, logged, actor = "flight-delay-audited", story["first"]["logged"], "prefect-flow-run/77"
    trail = AuditTrail(engine, "EWR", actor)
    model = DomainModel(domain="EWR", name=name, tracking_uri=tracking_uri, engine=engine)

    version = register_model_version(tracking_uri, name, logged, tags={f"{TAG}family": "network"}, audit=trail)
    assert register_model_version(tracking_uri, name, logged, tags={}, audit=trail) == version  # found, not registered
    apply_gate_verdict(model, version, True, "min_test_auc: 0.8100 > 0.6000", actor=actor)
    apply_gate_verdict(model, version, True, "min_test_auc: 0.8100 > 0.6000", actor="a rerun")  # applied already
    apply_gate_verdict(model, version, False, "min_test_auc: 0.5500 <= 0.6000", ["min_test_auc"], actor=actor)

    entries = read_audit(engine, "EWR")
    assert [(e.action, e.subject) for e in entries] == [
        ("registration", "v1"), ("alias", CHALLENGER), ("alias", CHAMPION), ("gate_verdict", "v1"),
        ("alias", CHALLENGER), ("gate_verdict", "v1"),
    ]  # fmt: skip
    registration, passed, failed = entries[0], entries[3], entries[5]
    assert registration.before is None and registration.actor == actor
    assert registration.after == {"model": name, "run_id": logged.run_id, "family": "network",
                                  "artifact_sha256": client.get_model_version(name, "1").tags[DIGEST_TAG]}  # fmt: skip
    assert registration.reason == f"registered from run {logged.run_id}"
    assert (passed.before, passed.after) == (None, {"passed": True, "failed_checks": []})
    assert passed.reason == "min_test_auc: 0.8100 > 0.6000" and passed.actor == actor
    assert (failed.before, failed.after) == ("passed", {"passed": False, "failed_checks": ["min_test_auc"]})

    # A version deleted by hand and registered again from its run says so.
    client.delete_model_version(name, "1")
    assert register_model_version(tracking_uri, name, logged, tags={}, audit=trail) == "2"
    again = read_audit(engine, "EWR")[-1]
    assert (again.action, again.subject) == ("registration", "v2")
    assert again.reason == f"{name} v1 is missing from the registry: registered again from its run"
    assert verify_audit(engine).ok
