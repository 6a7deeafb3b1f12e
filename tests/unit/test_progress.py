"""The CLI's progress: stages read from the flows' source, counted per flow run."""

from __future__ import annotations

import importlib
import logging
import pkgutil

import domainflow.flows
from domainflow.progress import StageCounter, StageProgress, declared_stages, flows_in


def _all_flows() -> dict[str, tuple[str, ...]]:
    modules = [importlib.import_module(m.name) for m in pkgutil.iter_modules(domainflow.flows.__path__,
                                                                              "domainflow.flows.")]  # fmt: skip
    return flows_in(modules)


def test_a_flows_stages_are_the_tasks_its_body_names_in_order():
    from domainflow.flows.training import train_domain_model

    assert declared_stages(train_domain_model) == (
        "fingerprint_source", "load_source", "prepare_domain", "fit_feature_pipeline", "name_tuning_study",
        "record_training_started", "tune_hyperparameters", "summarize_tuning", "train_network", "train_baseline",
        "optimize_for_serving", "calibrate_families", "score_candidates", "record_training_ended",
        "evaluate_candidate", "registered_version", "log_training_run", "register_model_version",
        "apply_gate_verdict", "summarize_domain_run",
    )  # fmt: skip


def test_every_flow_in_the_package_declares_its_stages():
    flows = _all_flows()
    assert set(flows) >= {"domain-lifecycle", "train-domain-model", "promote-challenger",
                          "monitor-domain", "monitor-domains", "retrain-domain", "watch-registry"}  # fmt: skip
    # The lifecycle hands its training task to a worker pool by reference, not by call: still a stage.
    assert "train_domain" in flows["domain-lifecycle"]
    assert flows["monitor-domains"] == ()  # it only starts sub-flows, which count their own


def _record(message: str, **extra) -> logging.LogRecord:
    record = logging.LogRecord("prefect", logging.INFO, __file__, 0, message, None, None)
    record.__dict__.update(extra)
    return record


def test_the_bar_grows_with_each_flow_run_and_ends_full():
    shown = []
    counter = StageCounter({"parent": ("a", "b", "c"), "child": ("a",)}, lambda d, t, line: shown.append((d, t)))
    handler = StageProgress(counter)
    handler.emit(_record("Beginning flow run 'p' for flow 'parent'", flow_run_id="1", flow_name="parent"))
    handler.emit(_record("Finished in state Completed()", flow_run_id="1", task_name="a"))
    handler.emit(_record("Finished in state Cached()", flow_run_id="1", task_name="b"))
    handler.emit(_record("Finished in state Completed()", flow_run_id="1", task_name="b"))  # a second worker of b
    handler.emit(_record("Beginning subflow run 'c' for flow 'child'", flow_run_id="2", flow_name="child"))
    handler.emit(_record("Finished in state Completed()", flow_run_id="2", task_name="a"))
    handler.emit(_record("Finished in state Completed()", flow_run_id="2", task_name="stray"))
    handler.emit(_record("Finished in state Completed()", flow_run_id="2"))
    assert (counter.done, counter.total) == (3, 4)  # c has not run
    handler.emit(_record("Finished in state Completed()", flow_run_id="1"))  # the branch with c was not taken
    assert (counter.done, counter.total) == (4, 4)
    assert shown[0] == (0, 3) and shown[-1] == (4, 4)
    assert counter.undeclared == {"child: stray"}
