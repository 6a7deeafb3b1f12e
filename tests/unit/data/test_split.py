from __future__ import annotations

import pandas as pd
import pytest

from domainflow.config import SplitConfig
from domainflow.data.split import SplitError, split_by_time

BOUNDS = SplitConfig()  # train < 2013-07-01 <= validation < 2013-08-01 <= test < 2013-09-01 <= holdout


def frame_at(times: list[str], labels: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"t": pd.to_datetime(times, format="ISO8601"), "_label": labels, "row": range(len(times))})


@pytest.fixture
def frame():
    return frame_at(
        [
            "2013-01-05", "2013-06-30 23:59", "2013-03-01",   # train
            "2013-07-01 00:00", "2013-07-31 23:00",           # validation
            "2013-08-01", "2013-08-15",                       # test
            "2013-09-01", "2013-12-31",                       # holdout
        ],
        [0, 1, 0, 1, 0, 0, 1, 1, 0],
    )  # fmt: skip


def test_rows_land_in_their_window(frame):
    split = split_by_time(frame, "t", "_label", BOUNDS)
    assert split.train["row"].tolist() == [0, 1, 2]
    assert split.validation["row"].tolist() == [3, 4]
    assert split.test["row"].tolist() == [5, 6]
    assert split.holdout["row"].tolist() == [7, 8]
    assert split.sizes() == {"train": 3, "validation": 2, "test": 2, "holdout": 2}
    assert list(split.validation.index) == [0, 1]


def test_empty_holdout_is_allowed(frame):
    split = split_by_time(frame.iloc[:7], "t", "_label", BOUNDS)
    assert split.holdout.empty


@pytest.mark.parametrize(("drop", "name"), [([0, 1, 2], "train"), ([3, 4], "validation"), ([5, 6], "test")])
def test_empty_window_names_the_setting(frame, drop, name):
    with pytest.raises(SplitError, match=rf"the {name} split is empty.*split\.train_until"):
        split_by_time(frame.drop(index=drop), "t", "_label", BOUNDS)


def test_one_class_window_is_refused(frame):
    one_class = frame.copy()
    one_class.loc[[3, 4], "_label"] = 1
    with pytest.raises(SplitError, match=r"validation split holds one class.*split\."):
        split_by_time(one_class, "t", "_label", BOUNDS)
