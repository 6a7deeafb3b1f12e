"""Drift thresholds calibrated on the reference itself, and the importance-weighted drift score they feed.

Evidently's fixed cutoffs (a normed Wasserstein of 0.1, a p-value of 0.05) say nothing about how
much a column moves between two windows of unchanged data: a day of one airport's weather moves
far more than 0.1, a 20,000-row window of a steady column far less. So the reference's rows are
split by whole weeks into a `compare` half, which every window is tested against, and a held-back
`pool`, from which windows of the judged window's length are drawn (whole days for the daily
series; blocks of consecutive days for the window check). Their statistics are each column's null
distribution; a column drifts when its statistic lies beyond the null quantile.

The threshold is the conformal order statistic: the ceil(q (n + 1))-th of n null statistics.
For a window exchangeable with the null windows, it is exceeded with probability at most 1 - q,
whatever the statistic's distribution; with fewer than q / (1 - q) + 1 null windows no such order
statistic exists (with one window left out, as the score's null needs), and the check falls back
to the fixed thresholds, saying so.

The window's alarm is calibrated the same way: the importance-weighted drifted share (the sum
of the drifted columns' shares of the model's permutation importance) of each null window gives
its null distribution. Features the model barely uses weigh nearly nothing in it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from domainflow.config import PipelineConfig

from .drift import (
    CATEGORICAL,
    NUMERIC,
    TESTS,
    ColumnDrift,
    DriftThresholds,
    _distinct_values,
    _Prepared,
    _prepared,
    _row_values,
    _score,
    _usable,
    choose_method,
)
from .reference import Reference

logger = logging.getLogger(__name__)

CALIBRATED, FIXED = "calibrated", "fixed"
# A day needs this many rows to be a window of the daily series (and a null day).
MIN_DAY_ROWS = 100
# A column's excess over its null counts up to this many times its null spread (see Thresholds.score).
MAX_EXCESS = 4.0
# Null windows of the window check are built of runs of this many consecutive pool days: weather
# and schedules hang together over days, and windows of scattered days would vary too little.
BLOCK_DAYS = 7


@dataclass(frozen=True)
class Halves:
    """The reference by whole weeks: `compare`, which windows are tested against; `pool`, held back for null windows."""

    compare: pd.DataFrame
    pool: pd.DataFrame
    timestamp: str


@dataclass(frozen=True)
class Thresholds:
    """Per-column thresholds and the weighted score's, for windows of `window_rows` rows (or one day)."""

    kind: str  # "calibrated" | "fixed"
    columns: DriftThresholds
    score_threshold: float  # the window alarms when its weighted drift score exceeds it
    null_windows: int  # 0 when fixed
    note: str = ""  # why the thresholds are fixed
    # Calibrated: per column (name, method, null median, null quantile) of the oriented statistic: the score's units.
    scales: tuple[tuple[str, str, float, float], ...] = ()

    def score(self, columns: list[ColumnDrift], weights: Mapping[str, float]) -> float:
        """The window's importance-weighted drift score.

        Calibrated: the sum over columns of weight x excess, the excess being how far the statistic
        lies above its null median in units of the null median's distance to the null quantile (1 at
        the column's threshold), clipped to [0, MAX_EXCESS] so that a huge move of a feature the model
        ignores stays small. Fixed: the drifted columns' share of the importance.
        """
        if self.kind == FIXED:
            return weighted_score([c.column for c in columns if c.drifted], weights)
        scales = {(name, method): (median, cut) for name, method, median, cut in self.scales}
        total = 0.0
        for column in columns:
            if column.method == "all_missing":
                excess = MAX_EXCESS
            elif (column.column, column.method) in scales:
                excess = _excess(_oriented(column.method, column.score), *scales[column.column, column.method])
            else:  # tested by another method than calibrated: only whether it drifted
                excess = MAX_EXCESS if column.drifted else 0.0
            total += weights.get(column.column, 0.0) * excess
        return float(total)

    def alarms(self, score: float) -> bool:
        # Fixed: Evidently's dataset rule (share >= drift_share), on the weighted share.
        return score > self.score_threshold if self.kind == CALIBRATED else score >= self.score_threshold

    def to_dict(self) -> dict:
        return {"kind": self.kind, "score_threshold": self.score_threshold, "null_windows": self.null_windows,
                "note": self.note}  # fmt: skip


@dataclass(frozen=True)
class DriftCalibration:
    """What a check needs from the reference: the rows to test against, the weights and both windows' thresholds."""

    reference: pd.DataFrame  # the compare half (the whole reference when fixed)
    weights: Mapping[str, float]
    window: Thresholds
    daily: Thresholds
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def feature_weights(importance: Mapping[str, float], features: list[str]) -> dict[str, float]:
    """Each feature's share of the model's (positive) permutation importance; equal shares when none is known."""
    positive = {f: max(float(importance.get(f, 0.0)), 0.0) for f in features}
    total = sum(positive.values())
    if not total > 0:
        return {f: 1.0 / len(features) for f in features}
    return {f: v / total for f, v in positive.items()}


def weighted_score(drifted: Collection[str], weights: Mapping[str, float]) -> float:
    """The drifted columns' share of the model's importance."""
    return float(sum(weights.get(c, 0.0) for c in drifted))


def split_reference(frame: pd.DataFrame, timestamp: str, seed: int = 0) -> Halves:
    """Whole weeks, paired in time order, one of each pair (seeded) held back: both halves span the same season."""
    times = pd.to_datetime(frame[timestamp])
    weeks = times.dt.to_period("W").astype(str).to_numpy()
    ordered = np.unique(weeks)
    rng = np.random.default_rng(seed)
    held = set()
    for start in range(0, len(ordered), 2):
        pair = ordered[start : start + 2]
        held.add(pair[int(rng.integers(len(pair)))] if len(pair) == 2 else pair[0])
    in_pool = np.isin(weeks, sorted(held))
    ordered_rows = np.argsort(times.to_numpy(), kind="stable")
    frame = frame.iloc[ordered_rows].reset_index(drop=True)
    in_pool = in_pool[ordered_rows]
    return Halves(frame.loc[~in_pool].reset_index(drop=True), frame.loc[in_pool].reset_index(drop=True), timestamp)


def conformal_upper(values: np.ndarray, quantile: float) -> float | None:
    """The ceil(q (n + 1))-th smallest value: a new exchangeable value exceeds it with probability <= 1 - q."""
    k = math.ceil(quantile * (values.size + 1))
    return None if k > values.size else float(np.sort(values)[k - 1])


def min_null_windows(quantile: float) -> int:
    """The fewest null windows whose conformal quantile exists, also with one window left out."""
    return math.ceil(quantile / (1 - quantile) - 1e-9) + 1


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str
    method: str
    reference: _Prepared  # the compare half's usable values (sorted, or codes), with keys for categorical
    pool: np.ndarray  # the pool's values in row order (floats with NaN, or codes with -1)


def _columns(reference: pd.DataFrame, pool: pd.DataFrame, numeric: list[str], categorical: list[str]) -> list[_Column]:
    """Each testable column, prepared once: the null windows only index into `pool`."""
    columns = []
    for name, kind in [(c, NUMERIC) for c in numeric] + [(c, CATEGORICAL) for c in categorical]:
        if not (reference[name].notna().any() and pool[name].notna().any()):
            continue
        reference_values, pool_values, keys = _row_values(name, kind, reference[name], pool[name])
        prepared = _prepared(name, kind, _usable(kind, reference_values), _usable(kind, pool_values), keys)
        method = choose_method(kind, prepared.reference.size, _distinct_values(prepared))
        columns.append(_Column(name, kind, method, prepared, pool_values))
    return columns


def _statistics(columns: list[_Column], windows: list[np.ndarray], skip_constant: bool) -> np.ndarray:
    """windows x columns: each null window's statistic; NaN where a column has no values (or one, if skipped)."""
    out = np.full((len(windows), len(columns)), np.nan)
    for j, column in enumerate(columns):
        for i, rows in enumerate(windows):
            values = _usable(column.kind, column.pool[rows])
            if values.size == 0 or (skip_constant and values.size and np.all(values == values[0])):
                continue
            out[i, j] = _score(column.method, _Prepared(column.kind, column.reference.reference, values,
                                                        column.reference.keys))  # fmt: skip
    return out


def _oriented(method: str, statistic: np.ndarray | float):
    """Larger is more drift: a distance as it is, a p-value as its negative log."""
    if TESTS[method].is_p_value:
        return -np.log(np.maximum(statistic, 1e-300))
    return statistic


def _excess(oriented, median, cut):
    """How far above the null median, in units of (null quantile - null median), clipped to [0, MAX_EXCESS]."""
    return np.clip((oriented - median) / np.maximum(cut - median, 1e-12), 0.0, MAX_EXCESS)


def _others_cut(values: np.ndarray, quantile: float) -> np.ndarray:
    """For each null value, the conformal quantile of the *other* null values.

    A null window scored against a quantile drawn from itself would be biased (at 0.99 of 100 values
    the quantile is their maximum: no window lies beyond it), and so would the score's threshold.
    """
    n = values.size
    k = math.ceil(quantile * n)  # the conformal order statistic among n - 1 others
    order = np.argsort(values, kind="stable")
    ranks = np.empty(n, dtype=int)
    ranks[order] = np.arange(n)
    ordered = values[order]
    return np.where(ranks > k - 1, ordered[k - 1], ordered[min(k, n - 1)])


def _calibrated(columns: list[_Column], statistics: np.ndarray, weights, quantile, fixed: DriftThresholds):
    """Per-column conformal thresholds, and the score's threshold from the null windows' scores.

    Each null window is scored against the other windows' quantiles (leave one out), so the score's
    null is what a new window would score.
    """
    per_column, scales = [], []
    scores = np.zeros(len(statistics))
    for j, column in enumerate(columns):
        is_p_value = TESTS[column.method].is_p_value
        # A window without values for a column is no drift of it (the mostly-null rule of the check).
        oriented = _oriented(column.method, np.nan_to_num(statistics[:, j], nan=1.0 if is_p_value else 0.0))
        cut, median = conformal_upper(oriented, quantile), float(np.median(oriented))
        scores += weights.get(column.name, 0.0) * _excess(oriented, median, _others_cut(oriented, quantile))
        # Stored so that Evidently's own comparison (<=, < or >=) means "beyond the null quantile".
        if is_p_value:
            p_cut = math.exp(-cut)
            stored = float(np.nextafter(p_cut, -np.inf)) if TESTS[column.method].inclusive else p_cut
        else:
            stored = float(np.nextafter(cut, np.inf))
        scales.append((column.name, column.method, median, cut))
        per_column.append((column.name, column.method, stored))
    columns_at = DriftThresholds(fixed.p_value, fixed.distance, per_column=tuple(per_column))
    return Thresholds(CALIBRATED, columns_at, conformal_upper(scores, quantile), null_windows=len(statistics),
                      scales=tuple(scales))  # fmt: skip


def _days(frame: pd.DataFrame, timestamp: str) -> list[np.ndarray]:
    """Row positions of each day with at least MIN_DAY_ROWS rows, in time order."""
    days = pd.to_datetime(frame[timestamp]).dt.floor("D").to_numpy()
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    bounds = np.r_[starts, len(days)]
    return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b - a >= MIN_DAY_ROWS]


def _block_windows(days: list[np.ndarray], rows: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` windows of `rows` rows, each runs of BLOCK_DAYS consecutive pool days from random starts (circular)."""
    windows = []
    for _ in range(count):
        parts, have = [], 0
        while have < rows:
            start = int(rng.integers(len(days)))
            for offset in range(BLOCK_DAYS):
                parts.append(days[(start + offset) % len(days)])
                have += parts[-1].size
                if have >= rows:
                    break
        windows.append(np.concatenate(parts)[:rows])
    return windows


def calibrate_drift(
    reference: Reference, config: PipelineConfig, *, window_rows: int, seed: int = 0
) -> DriftCalibration:
    """Thresholds for a window of `window_rows` rows and for one day, from null windows of the held-back half.

    Falls back to the fixed thresholds (monitoring.p_value_threshold / distance_threshold or Evidently's
    defaults, and the weighted share >= monitoring.drift_share) when the reference lacks event times or
    holds fewer than monitoring.min_null_days days of MIN_DAY_ROWS rows in its held-back half; the
    daily series also falls back when the reference's days are fewer than the quantile needs.
    """
    started = time.perf_counter()
    data, monitoring = config.data, config.monitoring
    train, timestamp = reference.train, reference.timestamp
    weights = feature_weights(reference.importance, data.features)
    fixed_columns = DriftThresholds(p_value=monitoring.p_value_threshold, distance=monitoring.distance_threshold)

    def fixed(note: str, which: str = "window check and daily series") -> Thresholds:
        if monitoring.calibrate_thresholds:
            logger.warning(
                "domain %s v%s: %s, too few to calibrate drift thresholds; the %s falls back to the fixed ones: "
                "p-value %s, distance %s per column, and an importance-weighted drifted share >= %s",
                reference.domain, reference.version, note, which, monitoring.p_value_threshold or "Evidently's default",
                monitoring.distance_threshold or "Evidently's default", monitoring.drift_share,
            )  # fmt: skip
        return Thresholds(FIXED, fixed_columns, monitoring.drift_share, null_windows=0, note=note)

    if not monitoring.calibrate_thresholds:
        off = fixed("monitoring.calibrate_thresholds is off")
        return DriftCalibration(train, weights, off, off, time.perf_counter() - started)
    if timestamp is None or timestamp not in train.columns:
        both = fixed(f"the reference has no event times ({len(train)} rows) to draw whole days from")
        return DriftCalibration(train, weights, both, both, time.perf_counter() - started, [both.note])
    halves = split_reference(train, timestamp, seed)
    pool_days, compare_days = _days(halves.pool, timestamp), _days(halves.compare, timestamp)
    quantile, warnings = monitoring.null_quantile, []
    if len(pool_days) < monitoring.min_null_days:
        both = fixed(f"the reference's held-back half holds {len(pool_days)} days of >= {MIN_DAY_ROWS} rows "
                     f"({len(halves.pool)} of {len(train)} rows), fewer than monitoring.min_null_days="
                     f"{monitoring.min_null_days}")  # fmt: skip
        return DriftCalibration(train, weights, both, both, time.perf_counter() - started, [both.note])

    numeric = [c for c in data.numeric_features if c in train.columns]
    categorical = [c for c in data.categorical_features if c in train.columns]
    rng = np.random.default_rng(seed)
    columns = _columns(halves.compare, halves.pool, numeric, categorical)
    windows = _block_windows(pool_days, window_rows, monitoring.null_windows, rng)
    window = _calibrated(columns, _statistics(columns, windows, False), weights, quantile, fixed_columns)

    # Days are few: every day serves, each tested against the other half (two-fold cross-fitting).
    needed = min_null_windows(quantile)
    if len(pool_days) + len(compare_days) < needed:
        note = (f"the reference holds {len(pool_days) + len(compare_days)} days of >= {MIN_DAY_ROWS} rows; "
                f"a {quantile} quantile of single days needs {needed}")  # fmt: skip
        daily = fixed(note, "daily series")
        warnings.append(note)
    else:
        swapped = _columns(halves.pool, halves.compare, numeric, categorical)
        by_name = {c.name: c for c in swapped}
        aligned = [c for c in columns if c.name in by_name]
        swapped = [_Column(c.name, c.kind, c.method, by_name[c.name].reference, by_name[c.name].pool) for c in aligned]
        statistics = np.vstack([_statistics(aligned, pool_days, True), _statistics(swapped, compare_days, True)])
        daily = _calibrated(aligned, statistics, weights, quantile, fixed_columns)
    return DriftCalibration(halves.compare, weights, window, daily, time.perf_counter() - started, warnings)
