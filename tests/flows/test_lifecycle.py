"""The lifecycle flow on a shrunken real config, against a real Prefect API and MLflow store."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import shutil
import time
from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow import MlflowClient

from domainflow.config import build_config
from domainflow.flows.lifecycle import run_lifecycle
from domainflow.progress import StageCounter, StageProgress, flows_in
from domainflow.settings import resolve_settings

from ..conftest import SAMPLE_DOMAINS, tiny_overrides
from .conftest import isolate_home


def _declared_stages() -> dict[str, tuple[str, ...]]:
    import domainflow.flows

    modules = [importlib.import_module(m.name) for m in pkgutil.iter_modules(domainflow.flows.__path__,
                                                                              "domainflow.flows.")]  # fmt: skip
    return flows_in(modules)


def _outcomes(state):
    return {o.domain: o for o in state.result(raise_on_failure=False)}


def _task_states(flow_run_id) -> dict[str, str]:
    """Task name -> state name for every task run under a flow run (its subflows, and theirs, included).

    Prefect records task runs' states from events, a moment after the flow run has ended: read until
    two reads a second apart agree and every state is final (at most half a minute).
    """
    previous, deadline = None, time.monotonic() + 30
    while True:
        runs = _task_runs_under(flow_run_id)
        current = {f"{run.name.rsplit('-', 1)[0]}@{run.flow_run_id}": run.state.name if run.state else "?"
                   for run in runs}  # fmt: skip
        settled = all(run.state is not None and run.state.is_final() for run in runs)
        if (settled and current == previous) or time.monotonic() > deadline:
            return current
        previous = current
        time.sleep(1)


def _task_runs_under(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort, TaskRunSort

    with get_client(sync_client=True) as client:
        ids, level = [flow_run_id], [flow_run_id]
        while level:
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=level)),
                sort=FlowRunSort.START_TIME_ASC,
                limit=200,
            )
            level = [run.id for run in children]
            ids += level
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
        )


@pytest.fixture(scope="module")
def first_run(flights_sample_csv, tmp_path_factory):
    """One lifecycle run in a home of its own, shared by the tests that start from a trained home.

    Training is their cost, so it runs once per test process (the tests share a pytest-xdist group).
    What later runs may change (aliases, the latest Prefect artifacts) is recorded right after it;
    what they cannot (a run's metrics and files, a version's tags) is read when asserted.
    """
    config = build_config(tiny_overrides(flights_sample_csv))
    home = tmp_path_factory.mktemp("lifecycle-first-run")
    counter = StageCounter(_declared_stages(), lambda done, total, line: None)
    handler, loggers = StageProgress(counter), [logging.getLogger(f"prefect.{kind}_runs") for kind in ("flow", "task")]
    with pytest.MonkeyPatch.context() as patch:
        isolate_home(patch, home)
        for logger in loggers:
            logger.addHandler(handler)
        try:
            state = run_lifecycle(config=config, return_state=True)
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
        aliases = _aliases(config)
        reports = {kind: _latest_artifact(f"{kind}-{config.name}-ewr") for kind in ("training", "gate")}
        audit = _audit()
    return SimpleNamespace(config=config, home=home, state=state, counter=counter, aliases=aliases, reports=reports,
                           audit=audit)  # fmt: skip


def _audit(domain: str | None = None) -> list:
    from domainflow.store.audit import read_audit
    from domainflow.store.database import open_database

    return read_audit(open_database(resolve_settings().database_url), domain)


@pytest.fixture
def trained_home(first_run, monkeypatch):
    """The first run's home for one test, which may add runs and versions to it."""
    isolate_home(monkeypatch, first_run.home)
    return first_run.home


def _aliases(config) -> dict[str, dict[str, str]]:
    client = MlflowClient(resolve_settings().tracking_uri)
    models = {domain: client.get_registered_model(config.registered_model_name(domain)) for domain in SAMPLE_DOMAINS}
    return {domain: {alias: str(v) for alias, v in model.aliases.items()} for domain, model in models.items()}


def _latest_versions(config) -> dict[str, int]:
    client = MlflowClient(resolve_settings().tracking_uri)
    return {domain: max(int(v.version) for v in client.search_model_versions(
                f"name = '{config.registered_model_name(domain)}'"))
            for domain in SAMPLE_DOMAINS}  # fmt: skip


FIRST_RUN = pytest.mark.xdist_group("lifecycle-first-run")


@FIRST_RUN
def test_lifecycle_registers_a_gated_model_per_domain(first_run, trained_home):
    state, config = first_run.state, first_run.config
    assert state.is_completed(), state.message
    # The progress bar's count comes from the flows themselves: it ends full, and no task ran undeclared.
    counter = first_run.counter
    assert counter.total > 0 and counter.done == counter.total and counter.undeclared == set()
    outcomes = _outcomes(state)
    assert sorted(outcomes) == sorted(SAMPLE_DOMAINS)
    client = MlflowClient(resolve_settings().tracking_uri)
    for domain, outcome in outcomes.items():
        assert outcome.rows_in == outcome.rows_kept + outcome.rows_quarantined
        assert set(outcome.aliases) == {"challenger", "champion"}
        assert first_run.aliases[domain] == {"challenger": outcome.version, "champion": outcome.version}
        version = client.get_model_version(config.registered_model_name(domain), outcome.version)
        for tag in ("data_fingerprint", "source_fingerprint", "config_hash", "code_version"):
            assert version.tags[f"domainflow.{tag}"], tag
        assert version.tags["domainflow.gate"] == "passed"
        assert version.tags["domainflow.served_variant"] == outcome.served_variant
        run = client.get_run(outcome.run_id)
        assert run.data.metrics["network_validation_auc"] == pytest.approx(outcome.network_val_auc)
        assert "gradient_boosting_test_auc" in run.data.metrics
        # Published counts are noisy, never the exact ones.
        assert "dp_rows_in" in run.data.metrics and "rows_in" not in run.data.metrics
        artifacts = {a.path for path in ("validation", "evaluation", "optimization")
                     for a in client.list_artifacts(outcome.run_id, path)}  # fmt: skip
        assert {"validation/great_expectations.json", "evaluation/gate_verdict.json",
                "evaluation/classification.html", "optimization/variants.json"} <= artifacts  # fmt: skip
        # Tuning: every trial is a child run; the study's summary is on the parent.
        trials = client.search_runs(
            [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{outcome.run_id}'"
        )
        assert len(trials) == outcome.tuning_trials == run.data.metrics["tuning_trials"] == 2
        assert {t.data.tags["domainflow.trial_state"] for t in trials} <= {"COMPLETE", "PRUNED"}
        # Every variant is measured; the served one is logged as the model.
        for variant in config.optimization.variants:
            assert run.data.metrics[f"variant_{variant}_available"] == 1.0, variant
        assert run.data.metrics["gate_passed"] == 1.0
        assert outcome.gate_reference == "baseline (HistGradientBoosting)"
    assert client.get_experiment_by_name(f"{config.name}/EWR") is not None
    report, gate = first_run.reports["training"], first_run.reports["gate"]
    assert "dp_rows_in (differentially private)" in report and f"{outcomes['EWR'].rows_in:,}" not in report
    assert "| non_inferiority |" in gate and "| slice_regression |" in gate and "Gate passed" in gate

    # Each domain's training is in the audit log, operation by operation, as its training flow run's.
    from domainflow.store.audit import verify_audit
    from domainflow.store.database import open_database

    for domain, outcome in outcomes.items():
        rows = [e for e in first_run.audit if e.domain == domain]
        assert [(e.action, e.subject) for e in rows][2:] == [
            ("registration", f"v{outcome.version}"), ("alias", "challenger"), ("alias", "champion"),
            ("gate_verdict", f"v{outcome.version}"),
        ]  # fmt: skip
        started, ended = rows[:2]
        tags = client.get_run(outcome.run_id).data.tags
        assert (started.action, ended.action) == ("training_started", "training_ended")
        assert started.subject == ended.subject == tags["domainflow.run_key"].split("-")[0]  # the training's key
        assert ended.after["auc"]["network"]["validation"] == pytest.approx(outcome.network_val_auc, abs=1e-6)
        assert {e.actor for e in rows} == {f"prefect-flow-run/{tags['domainflow.logged_by']}"}
    assert verify_audit(open_database(resolve_settings().database_url)).ok


def _latest_artifact(key: str) -> str:
    from prefect.artifacts import Artifact

    return Artifact.get(key).data


@FIRST_RUN
def test_second_run_with_unchanged_inputs_is_served_from_cache(first_run, trained_home):
    """The first run trained the domains one by one; the second, both at once in worker processes, reuses all of it."""
    config = first_run.config
    parallel = config.model_copy(update={"scale": config.scale.model_copy(update={"domain_workers": 2})})
    first = _outcomes(first_run.state)
    audited = _audit()

    state = run_lifecycle(config=parallel, return_state=True)

    assert state.is_completed(), state.message
    assert _audit() == audited  # nothing trained, registered or judged again: nothing audited
    second = _outcomes(state)
    assert {d: o.version for d, o in second.items()} == {d: o.version for d, o in first.items()}
    assert all(o.reused_run for o in second.values())
    assert {d: (o.status, o.gate) for d, o in second.items()} == {d: (o.status, o.gate) for d, o in first.items()}
    task_states = _task_states(state.state_details.flow_run_id)
    # The domains' tasks ran in the worker processes, and are found under this run.
    assert {name.split("@")[0] for name in task_states} >= {"train", "train_network", "register_model_version"}
    for stage in ("load_source", "prepare_domain", "record_training_started", "record_training_ended",
                  "fit_feature_pipeline", "tune_hyperparameters", "train_network", "train_baseline",
                  "optimize_for_serving", "calibrate_families",
                  # judged once: the verdict it got, not a new judgement
                  "evaluate_candidate"):  # fmt: skip
        states = {name: s for name, s in task_states.items() if name.startswith(stage + "@")}
        assert states and set(states.values()) == {"Cached"}, (stage, states)


@FIRST_RUN
def test_changed_config_trains_a_new_version(first_run, trained_home):
    first, before = _outcomes(first_run.state), _latest_versions(first_run.config)
    overrides = tiny_overrides(first_run.config.data.source)
    changed = build_config({**overrides, "training": {**overrides["training"], "max_epochs": 3, "seed": 7}})

    second = _outcomes(run_lifecycle(config=changed, return_state=True))

    for domain in SAMPLE_DOMAINS:
        assert int(second[domain].version) == before[domain] + 1
        assert not second[domain].reused_run
        # The first passing version stays champion; the new one is the challenger, gated against it.
        assert "champion" not in second[domain].aliases and "challenger" in second[domain].aliases
        assert second[domain].gate_reference == f"champion v{first[domain].version}"


@FIRST_RUN
def test_a_changed_gate_threshold_judges_the_same_versions_again_and_trains_nothing(first_run, trained_home):
    before = _latest_versions(first_run.config)
    overrides = tiny_overrides(first_run.config.data.source)
    changed = build_config({**overrides, "gate": {**overrides["gate"], "min_test_auc": 0.45}})
    audited = len(_audit())

    state = run_lifecycle(config=changed, return_state=True)

    assert state.is_completed(), state.message
    assert _latest_versions(first_run.config) == before  # no new version: the same models, judged again
    # Audited as what it was: no training and no registration (a verdict that differs from the one applied
    # would be audited; the same one stands as applied).
    assert {e.action for e in _audit()[audited:]} <= {"gate_verdict", "alias"}
    second = _outcomes(state)
    assert all(o.reused_run for o in second.values())
    # The versions judged again are the champions: never their own reference, but what they were judged against.
    assert {o.gate_reference for o in second.values()} == {"baseline (HistGradientBoosting)"}
    task_states = _task_states(state.state_details.flow_run_id)
    for stage, expected in (("train_network", "Cached"), ("train_baseline", "Cached"),
                            ("calibrate_families", "Cached"), ("evaluate_candidate", "Completed")):  # fmt: skip
        states = {name: s for name, s in task_states.items() if name.startswith(stage + "@")}
        assert states and set(states.values()) == {expected}, (stage, states)


@FIRST_RUN
def test_one_more_month_of_data_after_the_test_window_retrains_nothing(first_run, trained_home, tmp_path):
    """A month appended after every window the training reads, in a file of another name: the data is prepared
    again, and everything keyed on the training windows (tuning, training, calibration, the verdict, the MLflow
    run and version) is answered from the cache."""
    flights = pd.read_csv(first_run.config.data.source)
    december = flights[flights["scheduled_departure"].str.startswith("2013-12")]
    january = december.assign(scheduled_departure=december["scheduled_departure"].str.replace("2013-12", "2014-01"))
    extended = tmp_path / "flights-and-january.csv"
    pd.concat([flights, january]).to_csv(extended, index=False)
    before = _latest_versions(first_run.config)

    state = run_lifecycle(config=build_config(tiny_overrides(extended)), return_state=True)

    assert state.is_completed(), state.message
    assert _latest_versions(first_run.config) == before
    assert {d: o.run_id for d, o in _outcomes(state).items()} == {
        d: o.run_id for d, o in _outcomes(first_run.state).items()
    }
    task_states = _task_states(state.state_details.flow_run_id)
    for stage in ("fingerprint_source", "prepare_domain", "registered_version"):
        assert _states_of(task_states, stage) == {"Completed"}, stage
    for stage in ("fit_feature_pipeline", "name_tuning_study", "tune_hyperparameters", "train_network",
                  "train_baseline", "optimize_for_serving", "calibrate_families", "score_candidates",
                  "evaluate_candidate", "log_training_run", "register_model_version",
                  "apply_gate_verdict"):  # fmt: skip
        assert _states_of(task_states, stage) == {"Cached"}, stage


@FIRST_RUN
def test_a_version_deleted_by_hand_is_registered_again_and_nothing_else_is_redone(first_run, tmp_path, monkeypatch):
    """In a copy of the first run's home (the other tests keep its versions): its rerun, then EWR's version deleted."""
    home = tmp_path / "home"
    shutil.copytree(first_run.home, home)
    isolate_home(monkeypatch, home)
    config = first_run.config
    assert run_lifecycle(config=config, return_state=True).is_completed()  # keys this home's registry in the cache
    name, deleted = config.registered_model_name("EWR"), _outcomes(first_run.state)["EWR"].version
    client = MlflowClient(resolve_settings().tracking_uri)
    client.delete_model_version(name, deleted)

    state = run_lifecycle(config=config, return_state=True)

    assert state.is_completed(), state.message
    again = _outcomes(state)["EWR"]
    assert int(again.version) > int(deleted) and again.run_id == _outcomes(first_run.state)["EWR"].run_id
    assert again.reused_run and "champion" in again.aliases
    tags = client.get_model_version(name, again.version).tags
    assert tags["domainflow.registered_again"] == f"{name} v{deleted} is missing from the registry"
    registration = [e for e in _audit("EWR") if e.action == "registration"][-1]
    assert registration.subject == f"v{again.version}"
    assert registration.reason == f"{name} v{deleted} is missing from the registry: registered again from its run"
    task_states = _task_states(state.state_details.flow_run_id)
    for stage in ("tune_hyperparameters", "train_network", "train_baseline", "calibrate_families",
                  "evaluate_candidate"):  # fmt: skip
        assert _states_of(task_states, stage) == {"Cached"}, stage
    # EWR's record in MLflow is written again; the other domains' is read from the cache.
    for stage in ("log_training_run", "register_model_version", "apply_gate_verdict"):
        states = sorted(s for key, s in task_states.items() if key.startswith(stage + "@"))
        assert states == ["Cached"] * (len(SAMPLE_DOMAINS) - 1) + ["Completed"], stage


def _states_of(task_states: dict[str, str], stage: str) -> set[str]:
    return {s for name, s in task_states.items() if name.startswith(stage + "@")}


@FIRST_RUN
def test_a_model_failing_a_gate_is_registered_without_an_alias(first_run, trained_home):
    first, aliases_before = _outcomes(first_run.state), _aliases(first_run.config)
    overrides = tiny_overrides(first_run.config.data.source)
    # An absolute ceiling no model meets (the AUC floors follow the champion on its rows, so they would not do),
    # for a new model (another seed): a stricter gate alone would judge the same versions again.
    strict = build_config({**overrides, "gate": {**overrides["gate"], "max_test_log_loss": 0.01},
                           "training": {**overrides["training"], "seed": 11}})  # fmt: skip

    state = run_lifecycle(config=strict, return_state=True)
    second = _outcomes(state)

    # A rejection is an outcome, not an error: the run completes and says which checks failed.
    assert state.is_completed() and "rejected by the gates: EWR (max_test_log_loss)" in state.message
    client = MlflowClient(resolve_settings().tracking_uri)
    for domain, outcome in second.items():
        assert outcome.status == "rejected" and outcome.aliases == [] and outcome.failed_checks == ["max_test_log_loss"]
        version = client.get_model_version(outcome.model_name, outcome.version)
        assert version.tags["domainflow.gate"] == "failed"
        assert version.tags["domainflow.gate_failed_checks"] == "max_test_log_loss"
        assert "needs <= 0.0100" in version.tags["domainflow.gate_reason"]
        assert version.aliases == []
        assert aliases_before[domain]["champion"] == first[domain].version
    # Nothing moved: the champion (the first run's version) and the challenger are where they were.
    assert _aliases(first_run.config) == aliases_before


def test_bad_rows_are_quarantined_with_a_reason_and_none_are_lost(flights_sample_csv, tmp_path, domainflow_home):
    frame = pd.read_csv(flights_sample_csv)
    frame["distance"] = frame["distance"].astype(object)
    ewr = frame.index[frame["origin"] == "EWR"]
    frame.loc[ewr[:5], "distance"] = "far"  # wrong type
    frame.loc[ewr[5:9], "humid"] = 250.0  # out of range
    frame.loc[ewr[9:12], "carrier"] = None  # null in a required column
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    config = build_config(tiny_overrides(path))

    state = run_lifecycle(config=config, return_state=True)

    assert state.is_completed(), state.message
    ewr_outcome = _outcomes(state)["EWR"]
    assert ewr_outcome.rows_quarantined == 12
    assert ewr_outcome.rows_in == ewr_outcome.rows_kept + 12 == (frame["origin"] == "EWR").sum()
    quarantined = pd.read_csv(ewr_outcome.quarantine_path)
    reasons = quarantined["_quarantine_reason"]
    assert reasons.str.contains("distance is not a number: far").sum() == 5
    assert reasons.str.contains(r"humid outside \[0").sum() == 4
    assert reasons.str.contains("carrier is null").sum() == 3
    assert (quarantined["distance"].astype(str) == "far").sum() == 5  # raw values kept
    assert _outcomes(state)["JFK"].rows_quarantined == 0


def test_missing_columns_fail_the_domain_with_a_clear_message(flights_sample_csv, tmp_path, domainflow_home):
    path = tmp_path / "no_carrier.csv"
    pd.read_csv(flights_sample_csv).drop(columns=["carrier"]).to_csv(path, index=False)

    state = run_lifecycle(config=build_config(tiny_overrides(path)), return_state=True)

    assert state.is_failed()
    assert "2 of 2 domains failed" in state.message
    for outcome in _outcomes(state).values():
        assert outcome.status == "failed"
        assert "lacks the columns ['carrier']" in outcome.error


def test_quarantine_ceiling_stops_the_domain_and_keeps_the_evidence(flights_sample_csv, tmp_path, domainflow_home):
    frame = pd.read_csv(flights_sample_csv)
    jfk = frame.index[frame["origin"] == "JFK"]
    frame.loc[jfk[:300], "pressure"] = 5.0  # 20% of JFK's rows
    path = tmp_path / "mostly_bad.csv"
    frame.to_csv(path, index=False)

    state = run_lifecycle(config=build_config(tiny_overrides(path)), return_state=True)

    outcomes = _outcomes(state)
    assert state.is_failed() and "JFK" in state.message
    assert outcomes["EWR"].status == "registered"
    assert "max_quarantine_share" in outcomes["JFK"].error
    written = list((domainflow_home / "quarantine").rglob("JFK.csv"))
    assert len(written) == 1 and len(pd.read_csv(written[0])) == 300
