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

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in ("train", "validation", "test", "holdout")}

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
    return TimeSplit(**{name: part.reset_index(drop=True) for name, part in parts.items()})
