from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from domainflow.config import GateConfig
from domainflow.evaluation.gates import GateReference, evaluate_gates

ROWS = 8_000
CARRIERS = ["AA", "B6", "DL", "UA", "EV"]
CHECKS = [
    "min_validation_auc",
    "min_test_auc",
    "max_test_log_loss",
    "non_inferiority",
    "calibration",
    "slice_regression",
]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope="module")
def test_rows():
    """Labels drawn from a known probability, so a model that sees the signal is calibrated."""
    rng = np.random.default_rng(3)
    signal = rng.normal(size=ROWS)
    labels = (rng.random(ROWS) < _sigmoid(2.0 * signal - 1.0)).astype(int)
    # EV flies 6% of the rows: small enough that its collapse barely moves the overall AUC.
    carrier = rng.choice(CARRIERS, size=ROWS, p=[0.25, 0.25, 0.22, 0.22, 0.06])
    return labels, signal, pd.DataFrame({"carrier": carrier})


def _model(signal: np.ndarray, rng: np.random.Generator, noise: float = 0.2) -> np.ndarray:
    return _sigmoid(2.0 * (signal + rng.normal(scale=noise, size=signal.size)) - 1.0)


def _champion(signal: np.ndarray) -> GateReference:
    return GateReference("champion v3", "champion", _model(signal, np.random.default_rng(1)))


def _candidate(signal: np.ndarray) -> np.ndarray:
    """The champion's signal with independent noise: the same quality."""
    return _model(signal, np.random.default_rng(2))


def test_a_random_challenger_is_rejected_with_the_failing_checks_named(test_rows):
    labels, signal, slices = test_rows
    random_scores = np.random.default_rng(7).random(ROWS)

    verdict = evaluate_gates(labels, random_scores, 0.71, _champion(signal), slices, GateConfig())

    assert not verdict.passed
    assert {"min_test_auc", "non_inferiority", "calibration"} <= set(verdict.failed_checks)
    assert "min_validation_auc" not in verdict.failed_checks  # it was fine on validation: only the test catches it
    assert verdict.reason.startswith("failed min_test_auc (test_auc 0.")
    assert "non_inferiority (non_inferiority_lower -0." in verdict.reason


def test_a_candidate_of_the_same_quality_passes_non_inferiority(test_rows):
    labels, signal, slices = test_rows
    candidate = _candidate(signal)

    verdict = evaluate_gates(labels, candidate, 0.8, _champion(signal), slices, GateConfig())

    assert verdict.passed, verdict.reason
    check = {c.name: c for c in verdict.checks}["non_inferiority"]
    assert check.passed and check.threshold == -GateConfig().champion_margin
    assert "DeLong p" in check.detail and "McNemar p" in check.detail
    assert verdict.reason == "passed 5 checks against champion v3; skipped max_test_log_loss"


@pytest.mark.parametrize(("kind", "margin"), [("champion", 0.01), ("baseline", 0.03)])
def test_the_reference_kind_picks_the_margin(test_rows, kind, margin):
    labels, signal, _ = test_rows
    reference = GateReference(kind, kind, _model(signal, np.random.default_rng(1)))
    config = GateConfig(champion_margin=0.01, baseline_margin=0.03)

    verdict = evaluate_gates(labels, _candidate(signal), 0.8, reference, None, config)

    assert {c.name: c for c in verdict.checks}["non_inferiority"].threshold == -margin


def test_without_a_reference_the_comparisons_are_skipped_not_passed(test_rows):
    labels, signal, slices = test_rows

    verdict = evaluate_gates(labels, _candidate(signal), 0.8, None, slices, GateConfig())

    skipped = {c.name for c in verdict.checks if c.passed is None}
    assert skipped == {"max_test_log_loss", "non_inferiority", "calibration", "slice_regression"}
    assert verdict.passed
    assert "skipped max_test_log_loss, non_inferiority, calibration, slice_regression" in verdict.reason
    assert "gate_non_inferiority_passed" not in verdict.metrics()
    assert "| non_inferiority |  |  | skipped | skipped: no champion or baseline" in verdict.to_markdown()


def test_a_slice_where_the_candidate_collapsed_fails_while_the_overall_auc_barely_moves(test_rows):
    labels, signal, slices = test_rows
    baseline = GateReference("baseline", "baseline", _model(signal, np.random.default_rng(1)))
    candidate = _candidate(signal)
    on_ev = (slices["carrier"] == "EV").to_numpy()
    candidate[on_ev] = np.random.default_rng(5).permutation(candidate[on_ev])  # no signal left on EV

    verdict = evaluate_gates(labels, candidate, 0.8, baseline, slices, GateConfig())

    assert roc_auc_score(labels, baseline.scores) - roc_auc_score(labels, candidate) < 0.03
    assert verdict.failed_checks == ["slice_regression"]  # non-inferiority within the baseline's margin passed
    check = {c.name: c for c in verdict.checks}["slice_regression"]
    assert check.figure > 0.2 and check.detail.startswith("worst carrier=EV: AUC 0.")
    assert "1 of 5 slices judged fail (Holm)" in check.detail
    # Every slice is listed with its drop and the drop's bound, under the verdict's table.
    assert [part["slice"] for part in check.parts][0] == "carrier=EV" and len(check.parts) == 5
    assert {"drop", "drop_lower_bound", "holm_p_value", "fails"} <= set(check.parts[0])
    assert "slice_regression, each part:" in verdict.to_markdown() and "| carrier=EV | 501 |" in verdict.to_markdown()


def test_small_slices_are_not_judged(test_rows):
    labels, signal, slices = test_rows
    config = GateConfig(min_slice_rows=ROWS)

    verdict = evaluate_gates(labels, _candidate(signal), 0.8, _champion(signal), slices, config)

    check = {c.name: c for c in verdict.checks}["slice_regression"]
    assert check.passed is None and f"none of 5 slices has {ROWS} rows" in check.detail


def test_the_verdict_reads_as_markdown_json_and_mlflow_metrics(test_rows):
    labels, signal, slices = test_rows
    config = GateConfig(max_test_log_loss=0.2)  # far below what any model reaches here

    verdict = evaluate_gates(labels, _candidate(signal), 0.8, _champion(signal), slices, config)

    markdown = verdict.to_markdown()
    assert markdown.startswith("**Gate failed**: failed max_test_log_loss (test_log_loss 0.")
    for name in CHECKS:
        assert f"| {name} | 0." in markdown or f"| {name} | -0." in markdown
    assert json.loads(json.dumps(verdict.to_dict(), allow_nan=False))["failed_checks"] == ["max_test_log_loss"]
    metrics = verdict.metrics()
    assert metrics["gate_passed"] == 0.0 and metrics["gate_max_test_log_loss_passed"] == 0.0
    assert (
        metrics["gate_non_inferiority_lower"] < metrics["gate_auc_difference"] < metrics["gate_non_inferiority_upper"]
    )
    assert all(isinstance(value, float) for value in metrics.values())
    assert pickle.loads(pickle.dumps(verdict)) == verdict  # Prefect caches task results by pickling


def test_bad_inputs_name_the_argument_and_the_fix(test_rows):
    labels, signal, slices = test_rows
    scores = _candidate(signal)
    with pytest.raises(ValueError, match=r"slices lacks the gate.slice_columns \['dest'\]"):
        evaluate_gates(labels, scores, 0.8, None, slices, GateConfig(slice_columns=["dest"]))
    with pytest.raises(ValueError, match="'champion v3' have shape \\(10,\\)"):
        evaluate_gates(labels, scores, 0.8, GateReference("champion v3", "champion", scores[:10]), None, GateConfig())
    with pytest.raises(ValueError, match="candidate_scores must be probabilities"):
        evaluate_gates(labels, scores * 2, 0.8, None, None, GateConfig())


# Seven carriers of 302 to 4,050 test rows, as on the default data's busiest airport.
SLICE_ROWS = {"9E": 302, "MQ": 640, "AA": 900, "US": 1_300, "DL": 2_100, "B6": 3_300, "UA": 4_050}


def _equally_good_pair(seed: int, collapsed: str | None = None):
    """Two models of the same quality whose logits correlate 0.5, on labels of a known probability."""
    rng = np.random.default_rng(seed)
    carrier = np.repeat(list(SLICE_ROWS), list(SLICE_ROWS.values()))
    signal = rng.normal(size=carrier.size)
    labels = (rng.random(carrier.size) < _sigmoid(1.2 * signal - 1.0)).astype(int)
    reference, candidate = (_sigmoid(signal + rng.normal(size=carrier.size)) for _ in range(2))
    if collapsed is not None:  # the candidate learned nothing on this carrier
        on = carrier == collapsed
        candidate[on] = rng.permutation(candidate[on])
    return labels, candidate, GateReference("champion v1", "champion", reference), pd.DataFrame({"carrier": carrier})


def test_a_slice_drop_within_noise_passes_over_many_seeds():
    """Issue 16: judged on the largest point drop, two equally good models failed 13-28 % of the time."""
    config = GateConfig(bootstrap_resamples=100)
    failed = [
        evaluate_gates(*pair[:2], 0.7, pair[2], pair[3], config).failed_checks
        for pair in map(_equally_good_pair, range(60))
    ]
    slice_failures = sum("slice_regression" in checks for checks in failed)
    # At 95 % confidence at most 5 % may fail; the point-drop rule failed 9 of these 60.
    assert slice_failures <= 3, f"{slice_failures} of 60 equally good candidates failed the slice check"


def test_a_collapsed_slice_still_fails_over_many_seeds():
    config = GateConfig(bootstrap_resamples=100)
    caught = 0
    for seed in range(10):
        labels, candidate, reference, slices = _equally_good_pair(seed, collapsed="DL")
        check = {c.name: c for c in evaluate_gates(labels, candidate, 0.7, reference, slices, config).checks}
        caught += (
            check["slice_regression"].passed is False and check["slice_regression"].parts[0]["slice"] == "carrier=DL"
        )
    assert caught == 10


def test_calibration_is_judged_against_the_reference_on_a_month_whose_delay_rate_moved(test_rows):
    """Issue 16: an absolute ECE ceiling failed a retrain on such a month whatever the champion scored there.

    The test month's delay rate is 15 points above what both models learned; both are off by as much.
    """
    labels, signal, slices = test_rows
    rng = np.random.default_rng(11)
    moved = (rng.random(ROWS) < np.clip(_sigmoid(2.0 * signal - 1.0) + 0.15, 0, 1)).astype(int)
    champion, candidate = _champion(signal), _candidate(signal)

    verdict = evaluate_gates(moved, candidate, 0.8, champion, slices, GateConfig())

    check = {c.name: c for c in verdict.checks}["calibration"]
    assert check.extras["test_ece"] > 0.1 and check.extras["reference_test_ece"] > 0.1  # the old 0.075 ceiling fails it
    assert check.passed and abs(check.extras["ece_difference"]) < 0.01
    assert check.detail.startswith("ECE candidate - champion v3 = ")
    # Worse calibrated than the champion on the same rows still fails.
    overconfident = _sigmoid(3.0 * (2.0 * signal + rng.normal(scale=0.2, size=ROWS)) - 3.0)
    worse = {c.name: c for c in evaluate_gates(moved, overconfident, 0.8, champion, slices, GateConfig()).checks}
    assert worse["calibration"].passed is False and worse["calibration"].figure > 0.02


def test_a_config_with_the_old_calibration_ceiling_names_its_replacement():
    from domainflow.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="gate.max_calibration_error is gone.*gate.calibration_margin"):
        build_config({"gate": {"max_calibration_error": 0.075}})


def test_on_rows_the_champion_ranks_poorly_the_auc_floors_follow_it():
    """A concept shift flattens every model's AUC: a retrain better than the champion there is not refused.

    The benchmark of the loop (benchmarks/loop_value.py) found retrains 0.16-0.25 nats better than
    the champion on the next month rejected by the absolute 0.6 floor, the champion itself near 0.5.
    """
    rng = np.random.default_rng(5)
    signal = rng.normal(size=4_000)
    labels = (rng.random(4_000) < _sigmoid(0.3 * signal - 1)).astype(int)  # barely rankable
    candidate = _sigmoid(0.3 * signal - 1)
    champion = GateReference("champion v1", "champion", _sigmoid(0.5 * (signal + rng.normal(scale=2, size=4_000))))
    config = GateConfig(slice_columns=[], bootstrap_resamples=200)
    auc = roc_auc_score(labels, candidate)
    assert auc < config.min_test_auc, "the scenario needs a month every model ranks poorly"

    against_champion = evaluate_gates(labels, candidate, 0.55, champion, None, config, champion_validation_auc=0.52)
    checks = {check.name: check for check in against_champion.checks}
    assert checks["min_test_auc"].passed and "lowered to the champion's AUC" in checks["min_test_auc"].detail
    assert checks["min_validation_auc"].passed and checks["min_validation_auc"].threshold == pytest.approx(0.51)

    # Without a champion (a first model) the floors stay absolute.
    first = evaluate_gates(labels, candidate, 0.55, GateReference("baseline", "baseline", champion.scores), None,
                           config)  # fmt: skip
    assert {"min_test_auc", "min_validation_auc"} <= set(first.failed_checks)
