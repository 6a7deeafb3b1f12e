"""Prophet forecasts of a domain's daily quality or drift score, and an early warning before a threshold is crossed.

The warning reads the forecast's central value (yhat), not its interval: an 80 % interval on a noisy
series touches almost any threshold within a week, and a warning that always fires is ignored.
The interval is reported with the points so that a chart can show how sure the forecast is.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from domainflow.config import ForecastConfig

logger = logging.getLogger(__name__)

DIRECTIONS = ("above", "below")
# Prophet simulates trend changes and noise with numpy's global generator; a fixed seed makes the
# interval reproducible. 300 draws keep predict fast and the 80 % interval's edges stable to ~1e-3.
UNCERTAINTY_SAMPLES = 300
SEED = 0
# Weekly seasonality needs two full weeks to be told apart from the trend, and each weekday seen at least twice:
# fitted on a history with gaps (a weekday missing), it extrapolates that weekday wildly.
MIN_DAYS_FOR_WEEKLY = 14
MIN_SEEN_PER_WEEKDAY = 2
# Prophet's 25 potential changepoints put one on nearly every day of a short history: the fit can then
# interpolate the data, its noise scale collapses towards 0 and Newton's method takes seconds to get there
# (5-7 s at 14-20 days against 0.1 s) with a trend that chases the last few points. One per three days
# keeps short fits well posed; from 75 days on it is Prophet's default.
MAX_CHANGEPOINTS = 25
DAYS_PER_CHANGEPOINT = 3


@dataclass(frozen=True)
class Forecast:
    metric: str
    threshold: float
    # "above": a breach is value > threshold (drift share, log loss); "below": value < threshold (AUC).
    direction: str
    history_days: int
    last_date: date
    last_value: float
    # The latest observed value already breaches.
    breach_observed: bool
    # First forecast day within the horizon whose central forecast (yhat) breaches.
    breach_date: date | None
    days_until_breach: int | None
    # One per horizon day: {"date": "2013-10-02", "yhat": .., "lower": .., "upper": ..}.
    points: list[dict]

    @property
    def early_warning(self) -> bool:
        """A breach is forecast within the horizon and has not been observed yet."""
        return self.breach_date is not None and not self.breach_observed

    def to_dict(self) -> dict:
        """JSON-able: dates as ISO strings, plus `early_warning`."""
        out = asdict(self)
        out["last_date"] = self.last_date.isoformat()
        out["breach_date"] = None if self.breach_date is None else self.breach_date.isoformat()
        out["early_warning"] = self.early_warning
        return out


def forecast_breach(
    series: pd.Series, *, metric: str, threshold: float, direction: str, config: ForecastConfig
) -> Forecast | None:
    """Fit Prophet to a daily series and say when its forecast first crosses `threshold` within the horizon.

    `series` holds one value per day, indexed by date; days may be missing and NaN days are ignored.
    None when fewer than `config.min_history_days` days have a value: too little to fit a trend.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    threshold = float(threshold)
    history = _daily_history(series, metric)
    if len(history) < config.min_history_days:
        logger.info(
            "forecast %s: %d days of history, fewer than min_history_days=%d; no forecast",
            metric,
            len(history),
            config.min_history_days,
        )
        return None

    predicted = _fit_predict(history, config)
    breaches = _breaches(predicted["yhat"], threshold, direction)
    last_date = history["ds"].iloc[-1].date()
    last_value = float(history["y"].iloc[-1])
    breach_date = predicted["ds"][breaches].iloc[0].date() if breaches.any() else None
    forecast = Forecast(
        metric=metric,
        threshold=threshold,
        direction=direction,
        history_days=len(history),
        last_date=last_date,
        last_value=last_value,
        breach_observed=bool(_breaches(last_value, threshold, direction)),
        breach_date=breach_date,
        days_until_breach=None if breach_date is None else (breach_date - last_date).days,
        points=[
            {"date": day.date().isoformat(), "yhat": float(yhat), "lower": float(lower), "upper": float(upper)}
            for day, yhat, lower, upper in predicted.itertuples(index=False)
        ],
    )
    logger.info(
        "forecast %s: %d days to %s, last %.4g, threshold %s %.4g, breach %s, early warning %s",
        metric,
        forecast.history_days,
        last_date,
        last_value,
        direction,
        threshold,
        "observed" if forecast.breach_observed else (breach_date or "not within horizon"),
        forecast.early_warning,
    )
    return forecast


def _daily_history(series: pd.Series, metric: str) -> pd.DataFrame:
    """Prophet's frame (ds, y): the non-null days, sorted; a non-date index or non-numeric values raise."""
    index = series.index
    if not isinstance(index, pd.DatetimeIndex):
        if not all(isinstance(value, date) for value in index):
            raise ValueError(f"series for {metric!r} must be indexed by date (a DatetimeIndex or dates)")
        index = pd.DatetimeIndex(pd.to_datetime(list(index)))
    if index.tz is not None:
        index = index.tz_localize(None)
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        raise ValueError(f"series for {metric!r} must hold numbers, got dtype {series.dtype}")
    days = index.normalize()
    if days.has_duplicates:
        repeated = sorted({day.date().isoformat() for day in days[days.duplicated()]})
        raise ValueError(f"series for {metric!r} must hold one value per day; repeated: {repeated[:5]}")
    values = series.to_numpy(dtype=float, na_value=np.nan)
    if np.isinf(values).any():
        raise ValueError(f"series for {metric!r} holds infinite values; only finite values or NaN are allowed")
    frame = pd.DataFrame({"ds": days, "y": values}).dropna(subset=["y"])
    return frame.sort_values("ds", ignore_index=True)


def _fit_predict(history: pd.DataFrame, config: ForecastConfig) -> pd.DataFrame:
    """The next `horizon_days` calendar days after the last observed one: ds, yhat, yhat_lower, yhat_upper."""
    with _quiet_prophet() as Prophet:
        model = Prophet(
            daily_seasonality=False,
            yearly_seasonality=False,
            weekly_seasonality=_weekly_is_identifiable(history),
            interval_width=config.interval_width,
            changepoint_prior_scale=config.changepoint_prior_scale,
            n_changepoints=min(MAX_CHANGEPOINTS, len(history) // DAYS_PER_CHANGEPOINT),
            uncertainty_samples=UNCERTAINTY_SAMPLES,
        )
        # MAP fit (no MCMC): cmdstan's optimizer from Prophet's data-derived initial values is deterministic.
        model.fit(history)
    first_day = history["ds"].iloc[-1] + timedelta(days=1)
    future = pd.DataFrame({"ds": pd.date_range(first_day, periods=config.horizon_days)})
    state = np.random.get_state()
    np.random.seed(SEED)
    try:
        predicted = model.predict(future)
    finally:
        np.random.set_state(state)
    return predicted[["ds", "yhat", "yhat_lower", "yhat_upper"]]


def _weekly_is_identifiable(history: pd.DataFrame) -> bool:
    weekdays = pd.to_datetime(history["ds"]).dt.weekday.value_counts()
    return len(history) >= MIN_DAYS_FOR_WEEKLY and len(weekdays) == 7 and weekdays.min() >= MIN_SEEN_PER_WEEKDAY


def _breaches(values, threshold: float, direction: str):
    """Element-wise for a Series, a bool for a float."""
    return values > threshold if direction == "above" else values < threshold


@contextmanager
def _quiet_prophet() -> Iterator[type]:
    """Prophet's class, with cmdstanpy's two INFO lines per fit and Prophet's seasonality notes held to WARNING.

    Both set their loggers up on first use (Prophet to INFO at import, cmdstanpy to DEBUG with its own
    handler on its first fit), so that happens before the levels are lowered here, and they are restored after.
    """
    from cmdstanpy.utils import get_logger
    from prophet import Prophet

    get_logger()
    quiet = [logging.getLogger(name) for name in ("cmdstanpy", "prophet")]
    levels = [each.level for each in quiet]
    for each in quiet:
        each.setLevel(logging.WARNING)
    try:
        yield Prophet
    finally:
        for each, level in zip(quiet, levels, strict=True):
            each.setLevel(level)
