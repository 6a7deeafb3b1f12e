"""How often the drift rule decides right on simulated windows of known truth, against the old fixed rule.

    python benchmarks/drift_alarms.py [--seeds 20]   (about 8 minutes on two cores)

A flights-like process: the model's score rests on two features (`a`, `b`) and a carrier;
nine "weather" columns follow one seasonal factor with a day-level offset (one airport's hourly
weather), and the model barely uses them (their permutation importance is set near zero). The
reference is 110 days of it; each window is 2,000 rows (about 17 days). Per seed and scenario:

- unchanged: a window of the same months and process. Right: no retrain.
- seasonal shift: two months after the reference, the weather has moved. Right: no retrain.
- shift in an important feature, quality drops: `a` moves by 1 and the labels stop
  following the score. Right: retrain.
- shift in an important feature, quality holds: `a` moves by 1, the model still scores
  right. Right: no retrain (nothing to gain yet; the drift is reported).

Now: DRIFT_DETECTED needs the importance-weighted drift beyond its null (thresholds calibrated
on the reference's held-back whole days) and a failed quality check or quality forecast.
Before: DRIFT_DETECTED when half the columns drift at Evidently's fixed thresholds, tested
against the whole reference. Both see the same reference and window.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd

from domainflow.config import build_config
from domainflow.monitoring.check import check_domain, feature_drift
from domainflow.monitoring.events import DRIFT_DETECTED
from domainflow.monitoring.reference import Reference
from domainflow.monitoring.thresholds import calibrate_drift
from domainflow.monitoring.window import LogWindow

WEATHER = [f"w{i}" for i in range(9)]
NUMERIC, CATEGORICAL = ["a", "b", "hour", *WEATHER], ["carrier"]
CONFIG = build_config({
    "domains": {"values": ["EWR"]},
    "data": {"numeric_features": NUMERIC, "categorical_features": CATEGORICAL, "timestamp": "at"},
    "validation": {"ranges": {}, "not_null": []},
    "gate": {"slice_columns": []},
    "monitoring": {"min_window_rows": 500, "window_rows": 2_000, "min_labelled": 200},
})  # fmt: skip
IMPORTANCE = {"a": 0.25, "b": 0.1, "carrier": 0.03, "hour": 0.02, **dict.fromkeys(WEATHER, 0.001)}
PER_DAY, WINDOW = 120, 2_000
SCENARIOS = {  # name: (first day, shift of a, concept change, truth: retrain)
    "unchanged": ("2013-05-10", 0.0, 0.0, False),
    "seasonal shift (ignored)": ("2013-09-15", 0.0, 0.0, False),
    "important shift, quality drops": ("2013-07-01", 1.0, 1.5, True),
    "important shift, quality holds": ("2013-07-01", 1.0, 0.0, False),
}


def _days(first: str, days: int, seed: int, shift: float = 0.0, concept: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    at = pd.Timestamp(first) + pd.to_timedelta(np.repeat(np.arange(days), PER_DAY), unit="D")
    at = at + pd.to_timedelta(rng.integers(0, 86_400, at.size), unit="s")
    n = at.size
    frame = pd.DataFrame({"a": rng.normal(shift, 1.0, n), "b": rng.normal(0, 1.0, n),
                          "hour": rng.integers(5, 23, n).astype(float)})  # fmt: skip
    season = 0.03 * at.dayofyear.to_numpy() + np.repeat(rng.normal(0, 0.5, days), PER_DAY)
    for i, column in enumerate(WEATHER):
        frame[column] = (1 + 0.1 * i) * season + rng.normal(0, 1.0, n)
    frame["carrier"] = rng.choice(["AA", "B6", "DL", "UA", "US"], n, p=[0.1, 0.2, 0.2, 0.4, 0.1])
    logit = frame["a"] + 0.5 * frame["b"] + 0.3 * (frame["carrier"] == "UA") - 1.0
    frame["score"] = 1 / (1 + np.exp(-logit))
    frame["label"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-(logit - concept * frame["a"])))).astype(float)
    frame["loss"] = -np.log(np.where(frame["label"] == 1, frame["score"], 1 - frame["score"]))
    frame["latency_ms"], frame["error"], frame["variant"], frame["at"] = 5.0, None, "champion", at
    return frame.sort_values("at").reset_index(drop=True)


def _case(seed: int) -> dict[str, tuple[bool, bool, bool]]:
    """Per scenario: (truth: retrain, retrain event now, retrain event before)."""
    train = _days("2013-04-01", 110, seed)
    reference = Reference("EWR", "1", train, _days("2013-08-01", 20, seed + 1), data_matches=True, timestamp="at",
                          importance=IMPORTANCE)  # fmt: skip
    calibration = calibrate_drift(reference, CONFIG, window_rows=WINDOW, seed=seed)
    out = {}
    for offset, (name, (first, shift, concept, truth)) in enumerate(SCENARIOS.items()):
        frame = _days(first, 17, 10_000 + 10 * seed + offset, shift, concept).head(WINDOW)
        check = check_domain(reference, LogWindow("EWR", "1", frame), pd.DataFrame(), CONFIG, calibration)
        now = DRIFT_DETECTED in [e.name for e in check.events]
        before = feature_drift(reference.train, frame, CONFIG).dataset_drift
        out[name] = (truth, now, before)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    seeds = range(parser.parse_args().seeds)
    logging.disable(logging.WARNING)
    started = time.perf_counter()
    cases = [_case(s) for s in seeds]
    print(f"\nDrift event on {WINDOW:,}-row windows, {len(seeds)} seeds, {time.perf_counter() - started:.0f}s")
    print(f"{'scenario':<32} {'truth':<8} {'right now':>10} {'before':>8}")
    for name, (*_, truth) in SCENARIOS.items():
        results = [case[name] for case in cases]
        now = np.mean([t == n for t, n, _ in results])
        before = np.mean([t == b for t, _, b in results])
        print(f"{name:<32} {'retrain' if truth else 'no':<8} {now:>10.1%} {before:>8.1%}")


if __name__ == "__main__":
    main()
