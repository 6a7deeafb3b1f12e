"""One domain's verdict on synthetic windows: drift, degraded quality, a vanished feature, too few rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from domainflow.config import build_config
from domainflow.monitoring.check import check_domain
from domainflow.monitoring.events import DRIFT_DETECTED, QUALITY_DEGRADED
from domainflow.monitoring.reference import Reference
from domainflow.monitoring.window import LogWindow

NUMERIC, CATEGORICAL = ["a", "b", "c", "d"], ["k"]
CONFIG = build_config({
    "domains": {"values": ["EWR"]},
    "data": {"numeric_features": NUMERIC, "categorical_features": CATEGORICAL},
    "validation": {"ranges": {}, "not_null": []},
    "gate": {"slice_columns": []},
    "monitoring": {"min_window_rows": 500, "min_labelled": 200, "forecast": {"min_history_days": 14}},
})  # fmt: skip


def _rows(n: int, seed: int, shift: float = 0.0, start: str = "2013-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(shift, 1.0, n) for name in NUMERIC})
    frame["k"] = rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2])
    signal = frame["a"] - shift + 0.5 * frame["b"]
    frame["score"] = 1 / (1 + np.exp(-signal))
    frame["label"] = (rng.uniform(size=n) < frame["score"]).astype(float)
    frame["loss"] = -np.log(np.where(frame["label"] == 1, frame["score"], 1 - frame["score"]))
    frame["latency_ms"] = 5.0
    frame["error"] = None
    frame["variant"] = "champion"
    frame["at"] = pd.date_range(start, periods=n, freq=pd.Timedelta(days=40) / n)
    return frame


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference("EWR", "1", _rows(5_000, 0).drop(columns=["at"]), _rows(2_000, 1), data_matches=True)


def test_a_window_like_the_reference_is_ok(reference):
    check = check_domain(reference, LogWindow("EWR", "1", _rows(3_000, 2)), CONFIG)
    assert check.status == "ok" and check.events == []
    assert check.quality is not None and check.quality.passed
    assert check.health.score > 80 and len(check.daily) >= 30 and check.report_html


def test_shifted_features_drift_and_raise_the_event(reference):
    check = check_domain(reference, LogWindow("EWR", "1", _rows(3_000, 3, shift=1.0)), CONFIG)
    assert check.drift.dataset_drift and set(check.drift.drifted_columns()) >= set(NUMERIC)
    assert DRIFT_DETECTED in [e.name for e in check.events]
    event = next(e for e in check.events if e.name == DRIFT_DETECTED)
    assert event.resource["domainflow.domain"] == "EWR" and event.payload["drift_share"] == check.drift.share_drifted


def test_scores_that_no_longer_match_the_labels_degrade_quality(reference):
    window = _rows(3_000, 4)
    window["score"] = window["score"].sample(frac=1.0, random_state=0).to_numpy()
    check = check_domain(reference, LogWindow("EWR", "1", window), CONFIG)
    assert check.status == "degraded" and not check.quality.passed
    [event] = [e for e in check.events if e.name == QUALITY_DEGRADED]
    assert event.payload["failed_tests"] and event.payload["auc"] < 0.6


def test_a_feature_that_stops_arriving_counts_as_drifted(reference):
    window = _rows(3_000, 5)
    window["c"] = np.nan
    check = check_domain(reference, LogWindow("EWR", "1", window), CONFIG)
    [gone] = [c for c in check.drift.columns if c.column == "c"]
    assert gone.drifted and gone.method == "all_missing"


def test_too_few_predictions_are_not_judged(reference):
    check = check_domain(reference, LogWindow("EWR", "1", _rows(100, 6)), CONFIG)
    assert check.status == "insufficient" and check.events == [] and "min_window_rows" in check.note
