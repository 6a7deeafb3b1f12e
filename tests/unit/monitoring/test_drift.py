"""The fast drift path gives Evidently's DataDriftPreset verdicts, column by column, and says when it sampled."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from domainflow.monitoring.drift import DriftThresholds, column_drift, detect_drift
from domainflow.monitoring.reports import evidently_drift

NUMERIC = ["stable", "shifted", "scaled", "few", "binary", "constant"]
CATEGORICAL = ["carrier", "dest", "delayed"]
SHIFTED = {"shifted", "scaled", "carrier"}


def make_frame(rows: int, shifted: bool, seed: int) -> pd.DataFrame:
    """Every kind of column the default test choice tells apart, with nulls (and infinities) dropped by both."""
    rng = np.random.default_rng(seed)
    shift = 1.0 if shifted else 0.0
    frame = pd.DataFrame(
        {
            "stable": rng.normal(size=rows),
            "shifted": rng.normal(shift, 1.0, rows),
            "scaled": rng.normal(0.0, 1.0 + shift, rows),
            "few": rng.integers(0, 4, rows).astype(float),  # 4 values: chi-square / Jensen-Shannon
            "binary": rng.integers(0, 2, rows),  # 2 values: z-test / Jensen-Shannon
            "constant": np.ones(rows),
            "carrier": rng.choice(list("ABCDE"), rows, p=[0.1, 0.1, 0.2, 0.3, 0.3] if shifted else None),
            "dest": rng.choice(["ATL", "BOS", "ORD"], rows),
            "delayed": rng.choice(["yes", "no"], rows),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "stable"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "few"] = np.inf
    frame.loc[rng.random(rows) < 0.05, "carrier"] = None
    return frame


@pytest.fixture(scope="module")
def large() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_frame(3_000, shifted=False, seed=1), make_frame(2_500, shifted=True, seed=2)


# Evidently's histograms and correlations of the column holding infinities warn; its tests drop them as ours do.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(
    ("reference_rows", "methods", "thresholds"),
    [
        (3_000, {"wasserstein", "jensenshannon"}, DriftThresholds()),
        (3_000, {"wasserstein", "jensenshannon"}, DriftThresholds(p_value=0.01, distance=0.3)),
        (600, {"ks", "chisquare", "z"}, DriftThresholds()),
        (600, {"ks", "chisquare", "z"}, DriftThresholds(p_value=0.01, distance=0.3)),
    ],
)
def test_fast_path_agrees_with_evidently_column_by_column(reference_rows, methods, thresholds):
    reference = make_frame(reference_rows, shifted=False, seed=1)
    current = make_frame(reference_rows - 100, shifted=True, seed=2)
    # 3 of 9 columns drift (with the defaults): the share sits exactly on drift_share, which counts as drift.
    share = 1 / 3
    fast = detect_drift(reference, current, NUMERIC, CATEGORICAL, drift_share=share, thresholds=thresholds)
    slow = evidently_drift(reference, current, NUMERIC, CATEGORICAL, drift_share=share, thresholds=thresholds)

    assert [c.column for c in fast.columns] == NUMERIC + CATEGORICAL == [c.column for c in slow.columns]
    for mine, theirs in zip(fast.columns, slow.columns, strict=True):
        assert (mine.method, mine.kind, mine.threshold, mine.drifted) == (
            theirs.method, theirs.kind, theirs.threshold, theirs.drifted,
        ), mine.column  # fmt: skip
        # The same formulas on the same values; only the order of float sums differs.
        assert mine.score == pytest.approx(theirs.score, rel=1e-9, abs=1e-12), mine.column
    assert {c.method for c in fast.columns} == methods
    assert (fast.share_drifted, fast.dataset_drift) == (slow.share_drifted, slow.dataset_drift)
    # Each column is judged at the cutoff of its statistic's kind: a p-value's, or a distance's.
    expected = {c.column: thresholds.for_method(c.method) for c in fast.columns}
    assert {c.column: c.threshold for c in fast.columns} == expected
    if thresholds == DriftThresholds():
        assert set(fast.drifted_columns()) == SHIFTED
        assert fast.dataset_drift is True
    assert fast.sampled_rows is None and fast.sampling_error is None


def test_dataset_drift_needs_at_least_drift_share_of_the_columns(large):
    reference, current = large
    assert detect_drift(reference, current, ["stable", "shifted"], [], drift_share=0.5).dataset_drift
    assert not detect_drift(reference, current, ["stable", "shifted"], [], drift_share=0.51).dataset_drift


def test_sampling_keeps_clear_verdicts_and_states_its_error(large):
    reference, current = large
    exact = detect_drift(reference, current, NUMERIC, CATEGORICAL)
    sampled = detect_drift(reference, current, NUMERIC, CATEGORICAL, max_exact_rows=2_000, seed=7)

    assert sampled.sampled_rows == 2_000
    assert (sampled.reference_rows, sampled.current_rows) == (3_000, 2_500)
    assert 0 < sampled.sampling_error < 0.05
    # The test is still chosen by the whole reference's size (> 1000 rows), not the sample's.
    assert [c.method for c in sampled.columns] == [c.method for c in exact.columns]
    assert sampled.drifted_columns() == exact.drifted_columns()
    for before, after in zip(exact.columns, sampled.columns, strict=True):
        assert abs(after.score - before.score) < 5 * after.standard_error + 1e-9, before.column


def test_column_drift_judges_one_series_such_as_the_scores():
    rng = np.random.default_rng(0)
    reference, current = pd.Series(rng.beta(2, 5, 5_000), name="score"), pd.Series(rng.beta(5, 2, 5_000))
    drift = column_drift(reference, current, "numeric")
    assert (drift.column, drift.method, drift.threshold, drift.drifted) == ("score", "wasserstein", 0.1, True)
    assert not column_drift(reference, reference.sample(frac=1.0, random_state=1), "numeric").drifted


def test_result_serialises_to_json(large):
    result = detect_drift(*large, NUMERIC, CATEGORICAL)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["drifted_columns"] == result.drifted_columns()
    assert {c["column"] for c in payload["columns"]} == set(NUMERIC + CATEGORICAL)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ref, cur: (ref.drop(columns="dest"), cur), "'dest'.*missing from the reference"),
        (lambda ref, cur: (ref, cur.drop(columns="shifted")), "'shifted'.*missing from the current"),
        (lambda ref, cur: (ref.iloc[:0], cur), "reference frame is empty"),
        (lambda ref, cur: (ref, cur.assign(stable=np.nan)), "'stable' has no non-null values in the current"),
        (lambda ref, cur: (ref.assign(scaled="high"), cur), "'scaled' is listed as numeric but holds object"),
    ],
)
def test_bad_input_names_the_column_and_the_problem(large, change, message):
    reference, current = change(*large)
    with pytest.raises(ValueError, match=message):
        detect_drift(reference, current, NUMERIC, CATEGORICAL)


def test_bad_settings_are_refused(large):
    with pytest.raises(ValueError, match="both numeric and categorical"):
        detect_drift(*large, ["dest"], ["dest"])
    with pytest.raises(ValueError, match="drift_share"):
        detect_drift(*large, NUMERIC, [], drift_share=0)
    with pytest.raises(ValueError, match="kind must be"):
        column_drift(large[0]["dest"], large[1]["dest"], "text")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_value_only_the_current_window_holds_drifts_in_both():
    reference = make_frame(600, shifted=False, seed=1)
    current = make_frame(500, shifted=False, seed=2)
    current.loc[current.index % 10 == 0, "dest"] = "SFO"
    fast = detect_drift(reference, current, ["stable"], ["dest", "delayed"])
    slow = evidently_drift(reference, current, ["stable"], ["dest", "delayed"])
    assert [(c.method, c.drifted) for c in fast.columns] == [(c.method, c.drifted) for c in slow.columns]
    assert [c.score for c in fast.columns] == pytest.approx([c.score for c in slow.columns], rel=1e-9)
    assert fast.columns[1].method == "chisquare" and fast.columns[1].score == 0.0


def test_a_config_with_the_old_single_threshold_names_the_two_that_replace_it():
    from domainflow.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="stattest_threshold is gone.*p_value_threshold.*distance_threshold"):
        build_config({"monitoring": {"stattest_threshold": 0.1}})
    with pytest.raises(ValueError, match="p-value threshold must lie in"):
        DriftThresholds(p_value=1.5)
