"""Per-column drift the way Evidently's DataDriftPreset judges it, vectorized with numpy and scipy.

The test for each column is the one Evidently 0.7 picks by default
(`evidently/legacy/calculations/stattests/registry.py::_get_default_stattest`), on the
column with nulls and infinities dropped (`evidently/legacy/calculations/data_drift.py`),
counting the non-null reference rows and the distinct values of both frames together:

| reference rows | numeric                                   | categorical                    |
|----------------|-------------------------------------------|--------------------------------|
| <= 1000        | z (<= 2 values), chisquare (<= 5), ks     | z (<= 2 values), chisquare     |
| > 1000         | jensenshannon (<= 5 values), wasserstein  | jensenshannon                  |

Scores and thresholds are those of `evidently/legacy/calculations/stattests/*.py`: the
normed Wasserstein distance (W1 / max(std(reference), 0.001)) and the Jensen-Shannon
distance (natural log, over the shares of each value) drift at >= 0.1; the KS p-value at
<= 0.05; the chi-square and z-test p-values at < 0.05. Evidently's Jensen-Shannon bins a
numeric column by Sturges' rule only when the reference has more than 20 distinct values,
which the default choice never sends it (<= 5 values), so it is always over value counts here.

The speed comes from sorting each numeric column once: Wasserstein is the area between the
two empirical CDFs along a linear merge of the sorted values (scipy's formula without its
argsorts and searches), and the distinct-value count falls out of the sorted arrays instead
of a hash over both frames.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

logger = logging.getLogger(__name__)

NUMERIC, CATEGORICAL = "numeric", "categorical"
# Evidently's size and cardinality cut-offs for the default test.
SMALL_REFERENCE_ROWS = 1_000
FEW_VALUES = 5
# Disjoint parts of a sample whose spread estimates the sampling error.
SAMPLING_PARTS = 4


@dataclass(frozen=True)
class _Test:
    default_threshold: float
    is_p_value: bool  # a p-value drifts when small, a distance when large
    inclusive: bool  # Evidently's comparison: <= / >= (True) or < (False)


TESTS = {
    "wasserstein": _Test(0.1, is_p_value=False, inclusive=True),
    "jensenshannon": _Test(0.1, is_p_value=False, inclusive=True),
    "ks": _Test(0.05, is_p_value=True, inclusive=True),
    "chisquare": _Test(0.05, is_p_value=True, inclusive=False),
    "z": _Test(0.05, is_p_value=True, inclusive=False),
}


@dataclass(frozen=True)
class DriftThresholds:
    """A p-value cutoff for the tests that give one (ks, chisquare, z), a distance cutoff for the others.

    One number for both meant a p-value of 0.1 for some columns and a distance of 0.1 for others.
    None keeps Evidently's default for the method. `per_column` holds (column, method, threshold)
    calibrated on the reference (monitoring/thresholds.py); a column tested by another method than
    the one calibrated (new values turned up) takes the general threshold.
    """

    p_value: float | None = None
    distance: float | None = None
    per_column: tuple[tuple[str, str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.p_value is not None and not 0 < self.p_value < 1:
            raise ValueError(f"the p-value threshold must lie in (0, 1), got {self.p_value}")
        if self.distance is not None and not self.distance > 0:
            raise ValueError(f"the distance threshold must be > 0, got {self.distance}")

    def for_method(self, method: str) -> float:
        test = TESTS[method]
        chosen = self.p_value if test.is_p_value else self.distance
        return test.default_threshold if chosen is None else chosen

    def for_column(self, column: str, method: str) -> float:
        for name, calibrated_method, threshold in self.per_column:
            if name == column and calibrated_method == method:
                return threshold
        return self.for_method(method)


def is_drifted(method: str, score: float, threshold: float) -> bool:
    test = TESTS[method]
    if test.is_p_value:
        return bool(score <= threshold if test.inclusive else score < threshold)
    return bool(score >= threshold if test.inclusive else score > threshold)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # "numeric" | "categorical"
    method: str  # Evidently's stattest name: wasserstein, jensenshannon, ks, chisquare, z
    score: float  # the statistic Evidently reports: a distance, or a p-value
    threshold: float
    drifted: bool
    # Sampled path only: the score's estimated standard deviation due to sampling (see DriftResult).
    standard_error: float | None = None


@dataclass(frozen=True)
class DriftResult:
    """`sampling_error`, when rows were sampled, is the largest `ColumnDrift.standard_error`.

    Each column's standard error is the spread of its score over 4 disjoint quarters of the
    sample, std / 2 (scores computed on a quarter of the rows vary twice as much when they
    scale as 1/sqrt(rows), as the distances do); for p-values it is only indicative. A column
    whose score lies within a few standard errors of its threshold may flip on another sample.
    """

    columns: list[ColumnDrift]
    share_drifted: float
    dataset_drift: bool  # share_drifted >= drift_share, as Evidently's DatasetDriftMetric
    drift_share: float
    reference_rows: int
    current_rows: int
    sampled_rows: int | None  # rows tested from each frame larger than max_exact_rows; None when all were
    sampling_error: float | None
    seconds: float

    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict:
        def finite(value):
            return value if not isinstance(value, float) or math.isfinite(value) else None

        return {
            **{k: finite(v) for k, v in asdict(self).items() if k != "columns"},
            "drifted_columns": self.drifted_columns(),
            "columns": [{k: finite(v) for k, v in asdict(c).items()} for c in self.columns],
        }


@dataclass(frozen=True)
class _Prepared:
    """A column's non-null values: sorted floats (numeric) or value codes into `keys` (categorical)."""

    kind: str
    reference: np.ndarray
    current: np.ndarray
    keys: np.ndarray | None = None


def _distinct(sorted_values: np.ndarray) -> np.ndarray:
    keep = np.empty(sorted_values.size, dtype=bool)
    keep[:1] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=keep[1:])
    return sorted_values[keep]


def _row_values(column: str, kind: str, reference: pd.Series, current: pd.Series):
    """Both frames' values in row order: floats (numeric), or codes into shared keys with -1 for null (categorical)."""
    if kind == NUMERIC:
        arrays = []
        for frame, values in (("reference", reference), ("current", current)):
            if not pd.api.types.is_numeric_dtype(values):
                dtype = values.dtype
                raise ValueError(f"column {column!r} is listed as numeric but holds {dtype} in the {frame} frame")
            arrays.append(values.to_numpy(dtype=np.float64, na_value=np.nan))
        return arrays[0], arrays[1], None
    if kind == CATEGORICAL:
        values = pd.concat([reference, current], ignore_index=True)
        if pd.api.types.is_numeric_dtype(values):
            values = values.replace([np.inf, -np.inf], np.nan)
        codes, keys = pd.factorize(values)
        codes = codes.astype(np.intp, copy=False)
        return codes[: len(reference)], codes[len(reference) :], np.asarray(keys, dtype=object)
    raise ValueError(f"kind must be {NUMERIC!r} or {CATEGORICAL!r}, got {kind!r}")


def _usable(kind: str, values: np.ndarray) -> np.ndarray:
    """What Evidently tests: non-null, finite values (sorted, for numeric columns)."""
    if kind == CATEGORICAL:
        return values[values >= 0]
    finite = values[np.isfinite(values)]
    finite.sort()
    return finite


def _prepared(column: str, kind: str, reference: np.ndarray, current: np.ndarray, keys) -> _Prepared:
    for frame, values in (("reference", reference), ("current", current)):
        if values.size == 0:
            raise ValueError(f"column {column!r} has no non-null values in the {frame} frame")
    return _Prepared(kind, reference, current, keys)


def _prepare(column: str, kind: str, reference: pd.Series, current: pd.Series) -> _Prepared:
    reference_values, current_values, keys = _row_values(column, kind, reference, current)
    return _prepared(column, kind, _usable(kind, reference_values), _usable(kind, current_values), keys)


def _distinct_values(prepared: _Prepared) -> int:
    """Distinct values of both frames together, exact up to FEW_VALUES + 1 (all the choice needs)."""
    if prepared.kind == CATEGORICAL:
        return len(prepared.keys)
    reference, current = _distinct(prepared.reference), _distinct(prepared.current)
    if max(reference.size, current.size) > FEW_VALUES:
        return FEW_VALUES + 1
    return int(np.union1d(reference, current).size)


def choose_method(kind: str, reference_rows: int, distinct_values: int) -> str:
    """Evidently's default stattest for a column with this many non-null reference rows and distinct values."""
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if kind == NUMERIC and distinct_values > FEW_VALUES:
            return "ks"
        return "chisquare" if distinct_values > 2 else "z"
    if kind == NUMERIC and distinct_values > FEW_VALUES:
        return "wasserstein"
    return "jensenshannon"


def _counts(prepared: _Prepared) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows per value in each frame, and the index of the smallest value (the z-test's "first" key)."""
    if prepared.kind == CATEGORICAL:
        k = len(prepared.keys)
        reference, current = np.bincount(prepared.reference, minlength=k), np.bincount(prepared.current, minlength=k)
        present = np.flatnonzero(reference + current)  # a part of a sample may lack some values
        first = min(range(present.size), key=lambda i: prepared.keys[present[i]])
        return reference[present], current[present], first
    keys = np.union1d(_distinct(prepared.reference), _distinct(prepared.current))

    def count(values: np.ndarray) -> np.ndarray:
        return np.searchsorted(values, keys, side="right") - np.searchsorted(values, keys, side="left")

    return count(prepared.reference), count(prepared.current), 0


def _wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """scipy.stats.wasserstein_distance of two sorted samples: the area between their empirical CDFs.

    The samples are merged by placing each reference value after the current values <= it;
    counting along the merge gives both CDFs at every merged value where the next one is
    larger (tied values add zero width), the same counts scipy finds by searchsorted.
    """
    n, m = reference.size, current.size
    at = np.searchsorted(current, reference, side="right") + np.arange(n)
    from_reference = np.zeros(n + m, dtype=bool)
    from_reference[at] = True
    merged = np.empty(n + m)
    merged[at] = reference
    merged[~from_reference] = current
    below_reference = np.cumsum(from_reference[:-1])
    below_current = np.arange(1, n + m) - below_reference
    return float(np.sum(np.abs(below_reference / n - below_current / m) * np.diff(merged)))


def _z_p_value(reference: np.ndarray, current: np.ndarray, first: int) -> float:
    """Two-proportion z-test on "not the smallest value", as evidently's z_stattest.py."""
    n1, n2 = int(reference.sum()), int(current.sum())
    if len(reference) == 1:  # one value in both frames
        return 1.0
    p1 = float(n1 - reference[first]) / n1
    p2 = float(n2 - current[first]) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def _score(method: str, prepared: _Prepared) -> float:
    if method == "wasserstein":
        norm = max(float(np.std(prepared.reference)), 0.001)
        return _wasserstein(prepared.reference, prepared.current) / norm
    if method == "ks":
        return float(stats.ks_2samp(prepared.reference, prepared.current).pvalue)
    reference, current, first = _counts(prepared)
    n_reference, n_current = prepared.reference.size, prepared.current.size
    if method == "jensenshannon":
        return float(distance.jensenshannon(reference / n_reference, current / n_current))
    if method == "chisquare":
        with np.errstate(divide="ignore", invalid="ignore"):  # a value new in current: p = 0, as Evidently
            return float(stats.chisquare(current, reference * (n_current / n_reference)).pvalue)
    return _z_p_value(reference, current, first)


def column_test(reference: pd.Series, current: pd.Series, kind: str) -> str:
    """The test `column_drift` runs on this column: Evidently's default for its rows and distinct values."""
    prepared = _prepare(str(reference.name), kind, reference, current)
    return choose_method(kind, prepared.reference.size, _distinct_values(prepared))


def column_drift(
    reference: pd.Series,
    current: pd.Series,
    kind: str,
    thresholds: DriftThresholds = DriftThresholds(),
    *,
    column: str | None = None,
) -> ColumnDrift:
    """One column's drift verdict (also the prediction drift of the score column)."""
    column = str(column if column is not None else reference.name)
    prepared = _prepare(column, kind, reference, current)
    method = choose_method(kind, prepared.reference.size, _distinct_values(prepared))
    threshold = thresholds.for_column(column, method)
    score = _score(method, prepared)
    return ColumnDrift(column, kind, method, score, threshold, is_drifted(method, score, threshold))


def _sample(frame: pd.DataFrame, rows: int, rng: np.random.Generator) -> np.ndarray | None:
    """Row positions of a seeded sample in random order (so strided slices are disjoint random parts)."""
    return None if len(frame) <= rows else rng.choice(len(frame), size=rows, replace=False)


def _usable_rows(values: pd.Series) -> int:
    """Rows Evidently keeps: not null, not infinite."""
    if pd.api.types.is_numeric_dtype(values):
        return int(np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan)).sum())
    return int(values.notna().sum())


def _sampled_column_drift(
    reference: pd.Series,
    current: pd.Series,
    kind: str,
    thresholds: DriftThresholds,
    picks: list[np.ndarray | None],
) -> ColumnDrift:
    """The drift of the sampled rows, its test chosen by the whole reference's size, and its standard error.

    The standard error comes from the same test on SAMPLING_PARTS disjoint strided parts of
    each sampled frame (the sample is in random order); a frame used whole stays whole.
    """
    column = str(reference.name)
    samples = [s if pick is None else s.iloc[pick] for s, pick in zip((reference, current), picks, strict=True)]
    *rows, keys = _row_values(column, kind, *samples)
    prepared = _prepared(column, kind, *(_usable(kind, values) for values in rows), keys)
    method = choose_method(kind, _usable_rows(reference), _distinct_values(prepared))
    threshold = thresholds.for_column(column, method)
    score = _score(method, prepared)
    whole = (prepared.reference, prepared.current)
    parts = []
    for part in range(SAMPLING_PARTS):
        split = [used if pick is None else _usable(kind, values[part::SAMPLING_PARTS])
                 for used, values, pick in zip(whole, rows, picks, strict=True)]  # fmt: skip
        if min(values.size for values in split) > 0:
            parts.append(_score(method, _Prepared(kind, *split, keys)))
    error = float(np.std(parts, ddof=1) / math.sqrt(SAMPLING_PARTS)) if len(parts) > 1 else None
    return ColumnDrift(column, kind, method, score, threshold, is_drifted(method, score, threshold), error)


def check_columns(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str]) -> None:
    if not numeric and not categorical:
        raise ValueError("no columns to check: numeric and categorical are both empty")
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise ValueError(f"columns listed as both numeric and categorical: {both}")
    for name, frame in (("reference", reference), ("current", current)):
        if len(frame) == 0:
            raise ValueError(f"the {name} frame is empty")
        missing = [c for c in [*numeric, *categorical] if c not in frame.columns]
        if missing:
            raise ValueError(f"columns {missing} are missing from the {name} frame")


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    drift_share: float = 0.5,
    thresholds: DriftThresholds = DriftThresholds(),
    max_exact_rows: int = 1_000_000,
    seed: int = 0,
) -> DriftResult:
    """Each listed column's drift, and whether at least `drift_share` of them drifted.

    A frame with more than `max_exact_rows` rows is tested on a seeded sample of that many;
    the test is still chosen by the whole reference's size, as Evidently would.
    """
    started = time.perf_counter()
    check_columns(reference, current, numeric, categorical)
    if not 0 < drift_share <= 1:
        raise ValueError(f"drift_share must be in (0, 1], got {drift_share}")
    if max_exact_rows < 1:
        raise ValueError(f"max_exact_rows must be >= 1, got {max_exact_rows}")
    rng = np.random.default_rng(seed)
    picks = [_sample(reference, max_exact_rows, rng), _sample(current, max_exact_rows, rng)]
    sampled = any(pick is not None for pick in picks)
    kinds = [(c, NUMERIC) for c in numeric] + [(c, CATEGORICAL) for c in categorical]
    columns = [
        _sampled_column_drift(reference[c], current[c], kind, thresholds, picks)
        if sampled
        else column_drift(reference[c], current[c], kind, thresholds, column=c)
        for c, kind in kinds
    ]
    share = sum(c.drifted for c in columns) / len(columns)
    result = DriftResult(
        columns=columns,
        share_drifted=share,
        dataset_drift=share >= drift_share,
        drift_share=drift_share,
        reference_rows=len(reference),
        current_rows=len(current),
        sampled_rows=max_exact_rows if sampled else None,
        sampling_error=max((c.standard_error for c in columns if c.standard_error is not None), default=None),
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "drift: %d of %d columns drifted (share %.2f, dataset drift %s) on %d reference / %d current rows%s in %.2fs",
        len(result.drifted_columns()), len(columns), share, result.dataset_drift, len(reference), len(current),
        f", sampled {max_exact_rows} (error {result.sampling_error:.3g})" if sampled else "", result.seconds,
    )  # fmt: skip
    return result
