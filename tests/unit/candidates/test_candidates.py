"""The candidate stages chained as the flow chains them: tune -> train -> optimize -> score -> gate."""

from __future__ import annotations

import pytest

from domainflow.training.params import layers_key


def test_the_final_training_uses_the_best_trial(domain_candidates):
    tuning, network = domain_candidates.tuning, domain_candidates.network
    assert tuning.n_trials == 2 and tuning.best_params
    assert layers_key(network.hparams["hidden_sizes"]) == tuning.best_params["hidden_sizes"]
    assert network.hparams["learning_rate"] == pytest.approx(tuning.best_params["learning_rate"])
    # The final training runs its own epochs, not the trials' budget.
    assert network.epochs_run == domain_candidates.config.training.max_epochs


def test_the_network_is_scored_as_it_is_served(domain_candidates):
    optimized, scores = domain_candidates.optimized, domain_candidates.scores
    served = optimized.chosen_report
    assert served.available
    # Optimization measured the served variant on the same validation rows.
    assert scores.network["validation"]["auc"] == pytest.approx(served.auc, abs=2e-3)
    assert set(scores.flat()) >= {"network_test_auc", "gradient_boosting_test_auc", "network_validation_ece"}


def test_without_a_champion_every_family_is_gated_against_gradient_boosting(domain_candidates, mlflow_store):
    from domainflow.candidates.gate import evaluate_candidate

    c = domain_candidates
    evaluation = evaluate_candidate(mlflow_store[0], "no-such-model", c.config, c.split, c.candidate)
    network = evaluation.verdicts["network"]
    assert network.reference == "baseline (HistGradientBoosting)"
    assert network.window.startswith("test 2013-08-01 to 2013-09-01, ")
    assert [check.name for check in network.checks] == [
        "calibration_fit", "min_validation_auc", "min_test_auc", "max_test_log_loss", "non_inferiority", "calibration",
        "slice_regression",
    ]  # fmt: skip
    # The reference's own family is not compared with itself: only the checks that need no reference run.
    boosting = {check.name: check for check in evaluation.verdicts["gradient_boosting"].checks}
    assert all(boosting[name].skipped for name in ("non_inferiority", "calibration", "slice_regression"))
    assert not boosting["min_test_auc"].skipped
    passed = [family for family, verdict in evaluation.verdicts.items() if verdict.passed]
    assert evaluation.family == max(passed or evaluation.verdicts, key=evaluation.test_auc.get)
    assert "| network |" in evaluation.to_markdown() and "| gradient_boosting |" in evaluation.to_markdown()
    assert evaluation.report_path is None


def test_the_best_passing_family_is_chosen_and_a_failing_one_never_over_a_passing_one():
    from domainflow.candidates.gate import choose_family
    from domainflow.evaluation.gates import GateCheck, GateVerdict

    def verdict(passed):
        return GateVerdict((GateCheck("min_test_auc", 0.7, 0.6, ">=", passed, "", "test_auc"),), None)

    auc = {"network": 0.72, "gradient_boosting": 0.70}
    assert choose_family({"network": verdict(True), "gradient_boosting": verdict(True)}, auc)[0] == "network"
    family, why = choose_family({"network": verdict(False), "gradient_boosting": verdict(True)}, auc)
    assert family == "gradient_boosting" and "network 0.7200 (failed)" in why
    family, why = choose_family({"network": verdict(False), "gradient_boosting": verdict(False)}, auc)
    assert family == "network" and why.startswith("no family passed")


def test_a_family_whose_calibration_window_is_too_small_fails_naming_the_window(domain_candidates, mlflow_store):
    from dataclasses import replace

    from domainflow.candidates.gate import evaluate_candidate
    from domainflow.candidates.scores import calibrate_families

    c = domain_candidates
    strict = c.config.model_copy(update={"calibration": c.config.calibration.model_copy(update={"min_rows": 10_000})})
    families = calibrate_families(c.pipeline, c.split, c.optimized, c.candidate.family("gradient_boosting")
                                  .model.predictor().model, strict.calibration)  # fmt: skip
    candidate = replace(c.candidate, families=families)
    evaluation = evaluate_candidate(mlflow_store[0], "no-such-model", strict, c.split, candidate)
    for verdict in evaluation.verdicts.values():
        assert not verdict.passed and "calibration_fit" in verdict.failed_checks
        assert "validation 2013-07-01 to 2013-08-01" in verdict.reason
        assert "calibration.min_rows is 10000" in verdict.reason


def test_a_test_window_inside_what_the_champion_saw_is_refused_naming_the_dates(domain_candidates):
    from datetime import datetime

    import numpy as np

    from domainflow.candidates.gate import check_test_window
    from domainflow.config import SplitConfig
    from domainflow.registry.champion import ChampionScores

    split = domain_candidates.split  # tests 2013-08-01 to 2013-09-01
    later = SplitConfig(train_until=datetime(2013, 7, 15), validation_until=datetime(2013, 8, 15),
                        test_until=datetime(2013, 9, 15))  # fmt: skip
    (check,) = check_test_window(split, ChampionScores("3", "run", np.zeros(1), split=later))
    assert check.passed is False
    assert "starts 2013-08-01, inside what the champion saw" in check.detail
    assert "champion v3 trained before 2013-07-15 and validated to 2013-08-15" in check.detail
    (check,) = check_test_window(split, ChampionScores("3", "run", np.zeros(1), split=split.bounds))
    assert check.passed is True
    assert check_test_window(split, None) == ()
