"""Drift thresholds calibrated on the reference, and the evidence a retrain needs (issue 16).

A small built process: `a` and `b` drive the label (the model uses them), `season` follows the
calendar and `noise` is noise (the model ignores both), `k` is a category. Each day's rows share
a day-level offset of the season, as one airport's weather does.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from domainflow.config import build_config
from domainflow.monitoring.check import WeightedDrift, check_domain, daily_series, feature_drift
from domainflow.monitoring.events import DRIFT_DETECTED, MODEL_STALE, RETRAINING_EVENTS
from domainflow.monitoring.reference import Reference
from domainflow.monitoring.thresholds import (
    CALIBRATED,
    FIXED,
    calibrate_drift,
    conformal_upper,
    split_reference,
)
from domainflow.monitoring.window import LogWindow, days_in

NUMERIC, CATEGORICAL = ["a", "b", "season", "noise"], ["k"]
CONFIG = build_config({
    "domains": {"values": ["EWR"]},
    "data": {"numeric_features": NUMERIC, "categorical_features": CATEGORICAL, "timestamp": "at"},
    "validation": {"ranges": {}, "not_null": []},
    "gate": {"slice_columns": []},
    "monitoring": {"min_window_rows": 500, "window_rows": 2_000, "min_labelled": 200,
                   "forecast": {"min_history_days": 14}},
})  # fmt: skip
# The served model's permutation importance: it leans on a and b, barely on the rest.
IMPORTANCE = {"a": 0.30, "b": 0.12, "season": 0.002, "noise": 0.0, "k": 0.001}
PER_DAY = 120


def _days(first: str, days: int, seed: int, *, shift: float = 0.0, concept: float = 0.0) -> pd.DataFrame:
    """`days` days of PER_DAY rows; `shift` moves `a`, `concept` moves the true label away from the model's score."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(first)
    at = start + pd.to_timedelta(np.repeat(np.arange(days), PER_DAY), unit="D")
    at = at + pd.to_timedelta(rng.integers(0, 86_400, at.size), unit="s")
    day_of_year = at.dayofyear.to_numpy()
    n = at.size
    frame = pd.DataFrame({"a": rng.normal(shift, 1.0, n), "b": rng.normal(0, 1.0, n), "noise": rng.normal(0, 1.0, n)})
    weather = np.repeat(rng.normal(0, 1.0, days), PER_DAY)  # one offset per day
    frame["season"] = 0.2 * day_of_year + weather + rng.normal(0, 0.3, n)
    frame["k"] = rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2])
    logit = frame["a"] + 0.5 * frame["b"]
    frame["score"] = 1 / (1 + np.exp(-logit))
    truth = 1 / (1 + np.exp(-(logit - concept * frame["a"])))
    frame["label"] = (rng.uniform(size=n) < truth).astype(float)
    frame["loss"] = -np.log(np.where(frame["label"] == 1, frame["score"], 1 - frame["score"]))
    frame["latency_ms"], frame["error"], frame["variant"] = 5.0, None, "champion"
    frame["at"] = at
    return frame.sort_values("at").reset_index(drop=True)


def _reference(days: int = 110, seed: int = 0) -> Reference:
    train = _days("2013-04-01", days, seed)
    test = _days("2013-08-01", 20, seed + 1)
    return Reference("EWR", "1", train.drop(columns=["loss", "latency_ms", "error", "variant"]), test,
                     data_matches=True, timestamp="at", importance=IMPORTANCE)  # fmt: skip


@pytest.fixture(scope="module")
def reference() -> Reference:
    return _reference()


@pytest.fixture(scope="module")
def calibration(reference):
    return calibrate_drift(reference, CONFIG, window_rows=CONFIG.monitoring.window_rows)


def test_the_conformal_quantile_needs_enough_values():
    assert conformal_upper(np.arange(100.0), 0.99) == 99.0  # the 100th of 100: at most 1 % of new values above
    assert conformal_upper(np.arange(50.0), 0.99) is None


def test_the_halves_are_whole_weeks_of_the_same_season(reference):
    halves = split_reference(reference.train, "at")
    weeks = [set(h["at"].dt.to_period("W")) for h in (halves.compare, halves.pool)]
    assert not weeks[0] & weeks[1] and len(halves.compare) + len(halves.pool) == len(reference.train)
    assert abs(halves.compare["at"].mean() - halves.pool["at"].mean()) < pd.Timedelta(days=8)


def test_unchanged_windows_alarm_at_about_the_configured_rate(reference, calibration):
    """Fresh windows of the same process alarm in about 1 % of cases (null_quantile 0.99); seeded, so it cannot flake.

    Windows are drawn from days like the held-back ones (the same season), 2,000 rows each.
    """
    assert calibration.window.kind == CALIBRATED and calibration.window.null_windows == 100
    alarms = 0
    for seed in range(200):
        window = _days(f"2013-0{4 + seed % 4}-0{1 + seed % 9}", 17, 1_000 + seed).head(2_000)
        drift = feature_drift(calibration.reference, window, CONFIG, thresholds=calibration.window.columns)
        alarms += WeightedDrift.of(drift, calibration.window, calibration.weights, 0.1).alarm
    assert alarms <= 10, alarms  # <= 5 % at a 1 % rate per window


def test_unchanged_days_score_low_in_the_daily_series(reference, calibration):
    assert calibration.daily.kind == CALIBRATED and calibration.daily.null_windows >= 100
    days = LogWindow("EWR", "1", _days("2013-05-01", 60, 77))
    daily = daily_series(reference, days_in(days), CONFIG, calibration)
    assert len(daily) == 60 and (daily["drift_score"] > calibration.daily.score_threshold).mean() <= 0.05


def test_a_seasonal_feature_the_model_ignores_raises_no_retrain(reference, calibration):
    """Issue 16: September's weather drifts far from the summer's, but the model barely uses it."""
    autumn = _days("2013-09-15", 17, 5).head(2_000)
    check = check_domain(reference, LogWindow("EWR", "1", autumn), pd.DataFrame(), CONFIG, calibration)
    assert "season" in check.drift.drifted_columns()  # reported
    weighted = check.weighted_drift
    assert not weighted.alarm and weighted.score < weighted.threshold and sum(weighted.contributions.values()) < 0.01
    # No evidence of a worse model; only the schedule (labels 42 days past the test month) asks for a retrain.
    evidence = [e.name for e in check.events if e.name in RETRAINING_EVENTS and e.name != MODEL_STALE]
    assert check.quality.passed and not evidence
    assert [e.name for e in check.events if e.name in RETRAINING_EVENTS] == [MODEL_STALE]


def test_a_shift_in_an_important_feature_with_worse_quality_raises_the_event(reference, calibration):
    shifted = _days("2013-07-01", 17, 6, shift=1.0, concept=1.5).head(2_000)
    check = check_domain(reference, LogWindow("EWR", "1", shifted), pd.DataFrame(), CONFIG, calibration)
    assert "a" in check.drift.drifted_columns() and check.weighted_drift.alarm and not check.quality.passed
    [event] = [e for e in check.events if e.name == DRIFT_DETECTED]
    assert event.payload["threshold_kind"] == CALIBRATED and event.payload["null_windows"] == 100
    assert event.payload["drift_score"] > event.payload["drift_score_threshold"]
    assert "a" in event.payload["drift_contributions"] and event.payload["quality_failed"]


def test_a_shift_in_an_important_feature_alone_is_reported_but_raises_no_retrain(reference, calibration):
    shifted = _days("2013-07-01", 17, 6, shift=1.0).head(2_000)
    check = check_domain(reference, LogWindow("EWR", "1", shifted), pd.DataFrame(), CONFIG, calibration)
    assert check.weighted_drift.alarm and check.status == "drift" and check.quality.passed
    assert check.events == [] and "no sign yet of worse quality" in check.note


def test_a_reference_too_small_to_calibrate_falls_back_to_the_fixed_thresholds(caplog):
    small = _reference(days=30, seed=3)
    with caplog.at_level(logging.WARNING, logger="domainflow.monitoring.thresholds"):
        calibration = calibrate_drift(small, CONFIG, window_rows=2_000)
    assert calibration.window.kind == calibration.daily.kind == FIXED
    [message] = [r.getMessage() for r in caplog.records]
    assert "domain EWR v1" in message and "16 days" in message and "min_null_days=20" in message
    assert "falls back to the fixed ones" in message and "drifted share >= 0.5" in message
    window = _days("2013-05-01", 17, 9).head(2_000)
    check = check_domain(small, LogWindow("EWR", "1", window), pd.DataFrame(), CONFIG, calibration)
    assert check.to_record(None).summary["weighted_drift"]["threshold_kind"] == FIXED
    assert check.to_record(None).summary["daily_thresholds"]["kind"] == FIXED
