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
    assert set(scores.flat()) >= {"network_test_auc", "baseline_test_auc", "network_validation_ece"}


def test_without_a_champion_the_gates_compare_with_the_baseline(domain_candidates, mlflow_store):
    from domainflow.candidates.gate import evaluate_candidate

    c = domain_candidates
    evaluation = evaluate_candidate(mlflow_store[0], "no-such-model", c.config, c.split, c.candidate)
    verdict = evaluation.verdict
    assert verdict.reference == "baseline (HistGradientBoosting)"
    assert [check.name for check in verdict.checks] == [
        "min_validation_auc", "min_test_auc", "max_test_log_loss", "non_inferiority", "calibration",
        "slice_regression",
    ]  # fmt: skip
    assert evaluation.report_path is None
