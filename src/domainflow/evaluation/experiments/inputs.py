"""Argument checks shared by the experiment statistics: bad input raises a ``ValueError`` naming the argument."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def check_open_unit(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
    return value


def check_counts(
    successes: ArrayLike, trials: ArrayLike, *, names: tuple[str, str] = ("successes", "trials"), min_len: int = 1
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Success and trial counts as float arrays, one entry per variant."""
    s_name, n_name = names
    s = np.atleast_1d(np.asarray(successes, dtype=np.float64))
    n = np.atleast_1d(np.asarray(trials, dtype=np.float64))
    if s.ndim != 1 or n.ndim != 1:
        raise ValueError(f"{s_name} and {n_name} must be one-dimensional")
    if s.shape != n.shape:
        raise ValueError(f"{s_name} and {n_name} have mismatched lengths ({s.size} vs {n.size})")
    if s.size < min_len:
        raise ValueError(f"{s_name} needs at least {min_len} variants, got {s.size}")
    for name, arr in ((s_name, s), (n_name, n)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
        if np.any(arr < 0):
            raise ValueError(f"{name} must be non-negative, got {arr.tolist()}")
        if np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must be whole counts, got {arr.tolist()}")
    if np.any(s > n):
        raise ValueError(
            f"{n_name} must be >= {s_name} for every variant, got {s_name}={s.tolist()}, {n_name}={n.tolist()}"
        )
    if np.any(n == 0):
        raise ValueError(f"{n_name} must be positive for every variant, got {n.tolist()}")
    return s, n


def check_sample(name: str, values: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size < 2:
        raise ValueError(f"{name} needs at least 2 observations, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr
