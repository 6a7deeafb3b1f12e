"""Time-based split: the model is judged on months it has never seen."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from domainflow.config import SplitConfig
from domainflow.data.validation import LABEL_COLUMN


class SplitError(ValueError):
    """A split would be empty or single-class; the message names the boundary to move."""


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    # Rows after the test window: replayed later as production traffic.
    holdout: pd.DataFrame
    # The bounds the split was cut at (None for a split built by hand).
    bounds: SplitConfig | None = None

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in ("train", "validation", "test", "holdout")}

    def window(self, part: str) -> str:
        """The part named by its dates and rows, as verdicts cite it: "test 2013-08-01 to 2013-09-01, 9,312 rows"."""
        rows = f"{len(getattr(self, part)):,} rows"
        if self.bounds is None:
            return f"{part}, {rows}"
        b = self.bounds
        start, end = {"validation": (b.train_until, b.validation_until), "test": (b.validation_until, b.test_until)}[
            part
        ]
        return f"{part} {start:%Y-%m-%d} to {end:%Y-%m-%d}, {rows}"

    def labels(self, part: str) -> np.ndarray:
        """The 0/1 labels of one part ("train", "validation", "test" or "holdout")."""
        return getattr(self, part)[LABEL_COLUMN].to_numpy()


def split_by_time(frame: pd.DataFrame, timestamp: str, label: str, bounds: SplitConfig) -> TimeSplit:
    times = frame[timestamp]
    parts = {
        "train": frame.loc[times < bounds.train_until],
        "validation": frame.loc[(times >= bounds.train_until) & (times < bounds.validation_until)],
        "test": frame.loc[(times >= bounds.validation_until) & (times < bounds.test_until)],
        "holdout": frame.loc[times >= bounds.test_until],
    }
    for name in ("train", "validation", "test"):
        part = parts[name]
        if part.empty:
            raise SplitError(
                f"the {name} split is empty (data spans {times.min()} to {times.max()}); "
                "move split.train_until / validation_until / test_until into that range"
            )
        if part[label].nunique() < 2:
            raise SplitError(f"the {name} split holds one class only; widen its window in split.*")
    return TimeSplit(**{name: part.reset_index(drop=True) for name, part in parts.items()}, bounds=bounds)
