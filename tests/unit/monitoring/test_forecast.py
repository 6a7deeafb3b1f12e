"""Prophet early warnings on seeded daily series whose crossing day is known."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from domainflow.config import ForecastConfig
from domainflow.monitoring.forecast import forecast_breach

START = pd.Timestamp("2013-09-01")
CONFIG = ForecastConfig()
# AUC = 0.80 - 0.004 * day crosses 0.65 after day 37.5: the first breaching day is day 38.
AUC_CROSSING = (START + pd.Timedelta(days=38)).date()
# Drift share = 0.10 + 0.012 * day crosses 0.5 after day 33.3: the first breaching day is day 34.
DRIFT_CROSSING = (START + pd.Timedelta(days=34)).date()


def daily(values: np.ndarray, start: pd.Timestamp = START) -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values)))


def falling_auc(days: int, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    return daily(0.80 - 0.004 * np.arange(days) + rng.normal(0, 0.004, days))


def rising_drift(days: int, seed: int = 1) -> pd.Series:
    rng = np.random.default_rng(seed)
    return daily(0.10 + 0.012 * np.arange(days) + rng.normal(0, 0.01, days))


def test_falling_auc_warns_before_the_breach():
    history = falling_auc(33)  # days 0-32: the true crossing is 6 days ahead

    forecast = forecast_breach(history, metric="auc", threshold=0.65, direction="below", config=CONFIG)

    assert forecast is not None
    assert forecast.last_value > 0.65 and not forecast.breach_observed
    assert forecast.early_warning
    assert AUC_CROSSING - timedelta(days=3) <= forecast.breach_date <= AUC_CROSSING
    assert 1 <= forecast.days_until_breach <= CONFIG.horizon_days
    assert forecast.days_until_breach == (forecast.breach_date - forecast.last_date).days
    assert len(forecast.points) == CONFIG.horizon_days
    assert forecast.points[0]["date"] == (forecast.last_date + timedelta(days=1)).isoformat()
    assert all(point["lower"] <= point["yhat"] <= point["upper"] for point in forecast.points)


def test_rising_drift_share_warns_with_direction_above():
    forecast = forecast_breach(rising_drift(29), metric="drift_share", threshold=0.5, direction="above", config=CONFIG)

    assert forecast is not None
    assert forecast.last_value < 0.5 and forecast.early_warning
    assert abs((forecast.breach_date - DRIFT_CROSSING).days) <= 2
    assert forecast.days_until_breach <= CONFIG.horizon_days
    assert forecast.points[-1]["yhat"] > 0.5


def test_flat_noisy_series_gives_no_warning():
    rng = np.random.default_rng(2)
    flat = daily(0.75 + rng.normal(0, 0.01, 60))

    forecast = forecast_breach(flat, metric="auc", threshold=0.65, direction="below", config=CONFIG)

    assert forecast is not None
    assert not forecast.early_warning and forecast.breach_date is None and forecast.days_until_breach is None
    assert all(abs(point["yhat"] - 0.75) < 0.03 for point in forecast.points)


def test_a_history_missing_a_weekday_does_not_extrapolate_that_weekday():
    # Seen on the default data: days with too few labels leave gaps; weekly seasonality fitted without any
    # Saturday forecast an AUC of -0.45 for the next Saturday. Without every weekday seen twice, no weekly term.
    rng = np.random.default_rng(3)
    days = [d for d in pd.date_range("2013-03-01", periods=42) if d.weekday() != 5]
    series = pd.Series(0.76 + rng.normal(0, 0.02, len(days)), index=pd.DatetimeIndex(days))
    forecast = forecast_breach(series, metric="auc", threshold=0.66, direction="below", config=CONFIG)
    assert not forecast.early_warning
    assert all(0.6 < point["yhat"] < 0.9 for point in forecast.points)


def test_a_breach_already_observed_is_no_early_warning():
    forecast = forecast_breach(falling_auc(45), metric="auc", threshold=0.65, direction="below", config=CONFIG)

    assert forecast.breach_observed and forecast.breach_date is not None
    assert not forecast.early_warning


def test_gaps_and_nan_days_are_skipped_and_dates_may_be_plain():
    history = falling_auc(32)
    history.iloc[[3, 10, 11]] = np.nan
    history = history.drop(history.index[[20, 21]])
    history.index = [day.date() for day in history.index]

    forecast = forecast_breach(history, metric="auc", threshold=0.65, direction="below", config=CONFIG)

    assert forecast.history_days == 32 - 5
    assert forecast.last_date == (START + pd.Timedelta(days=31)).date()
    assert forecast.early_warning


def test_forecast_is_reproducible_and_json_safe():
    history = falling_auc(32)
    first = forecast_breach(history, metric="auc", threshold=0.65, direction="below", config=CONFIG)
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)

    second = forecast_breach(history, metric="auc", threshold=0.65, direction="below", config=CONFIG)

    assert first == second
    assert np.random.random() == before, "the caller's numpy random state is left as it was"
    payload = json.loads(json.dumps(first.to_dict()))
    assert payload["early_warning"] is True
    assert payload["breach_date"] == first.breach_date.isoformat()
    assert set(payload["points"][0]) == {"date", "yhat", "lower", "upper"}


def test_prophet_and_cmdstanpy_stay_quiet(caplog):
    with caplog.at_level(logging.INFO):
        forecast_breach(falling_auc(20), metric="auc", threshold=0.65, direction="below", config=CONFIG)

    chatty = [record for record in caplog.records if record.name.split(".")[0] in {"prophet", "cmdstanpy"}]
    assert chatty == []
    assert any(record.name == "domainflow.monitoring.forecast" for record in caplog.records)


def test_too_short_history_returns_none():
    history = falling_auc(30)
    history.iloc[CONFIG.min_history_days - 1 :] = np.nan

    assert forecast_breach(history, metric="auc", threshold=0.65, direction="below", config=CONFIG) is None


@pytest.mark.parametrize(
    ("series", "threshold", "direction", "message"),
    [
        (falling_auc(20), 0.65, "down", "direction"),
        (falling_auc(20), float("nan"), "below", "threshold"),
        (falling_auc(20), float("inf"), "below", "threshold"),
        (falling_auc(20), "0.65", "below", "threshold"),
        (pd.Series(np.linspace(0.8, 0.7, 20)), 0.65, "below", "indexed by date"),
        (pd.Series(0.8, index=[f"2013-09-{day:02d}" for day in range(1, 21)]), 0.65, "below", "indexed by date"),
        (daily(np.array(["a"] * 20, dtype=object)), 0.65, "below", "numbers"),
        (daily(np.r_[np.full(19, 0.8), np.inf]), 0.65, "below", "infinite"),
        (
            pd.Series(0.8, index=[date(2013, 9, 1)] * 2 + [date(2013, 9, day) for day in range(2, 20)]),
            0.65,
            "below",
            "one value per day",
        ),
    ],
)
def test_bad_input_raises_naming_it(series, threshold, direction, message):
    with pytest.raises(ValueError, match=message):
        forecast_breach(series, metric="auc", threshold=threshold, direction=direction, config=CONFIG)
