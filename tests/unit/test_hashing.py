from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

from domainflow.config import TrainingConfig
from domainflow.hashing import stable_digest


@pytest.fixture
def frame():
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "a": rng.normal(size=20),
            "b": rng.integers(0, 5, size=20),
            "c": rng.choice(["x", "y", None], size=20),
            "t": pd.date_range("2013-01-01", periods=20, freq="h"),
        }
    )


@dataclass(frozen=True)
class Bundle:
    train: pd.DataFrame
    test: pd.DataFrame
    name: str


def test_frame_and_its_pickle_round_trip_hash_equal(frame):
    restored = pickle.loads(pickle.dumps(frame))
    assert stable_digest(frame) == stable_digest(restored)


def test_one_changed_value_changes_the_digest(frame):
    changed = frame.copy()
    changed.loc[7, "a"] += 1e-9
    assert stable_digest(changed) != stable_digest(frame)


def test_dtype_change_changes_the_digest():
    ints = pd.DataFrame({"a": [1, 2, 3]})
    assert stable_digest(ints) != stable_digest(ints.astype("float64"))


def test_dataclass_with_frames_round_trips(frame):
    bundle = Bundle(frame, frame.head(5), "x")
    restored = pickle.loads(pickle.dumps(bundle))
    assert stable_digest(bundle) == stable_digest(restored)
    assert stable_digest(bundle) != stable_digest(Bundle(frame, frame.head(6), "x"))
    assert stable_digest(bundle) != stable_digest(Bundle(frame, frame.head(5), "y"))


def test_containers_models_arrays_and_tensors():
    config = TrainingConfig()
    assert stable_digest(config) == stable_digest(TrainingConfig())
    assert stable_digest(config) != stable_digest(TrainingConfig(seed=1))
    assert stable_digest({"b": 1, "a": 2}) == stable_digest({"a": 2, "b": 1})
    assert stable_digest([1, 2]) != stable_digest((1, 2))
    assert stable_digest(1) != stable_digest("1")
    array = np.arange(6, dtype=np.float32)
    assert stable_digest(array) == stable_digest(pickle.loads(pickle.dumps(array)))
    assert stable_digest(array) != stable_digest(array.reshape(2, 3))
    assert stable_digest(torch.arange(4.0)) == stable_digest(torch.arange(4.0).clone())
    assert stable_digest(torch.arange(4.0)) != stable_digest(torch.arange(1.0, 5.0))


def test_series_digest_tracks_name_and_values():
    s = pd.Series([1.0, 2.0], name="x")
    assert stable_digest(s) == stable_digest(s.copy())
    assert stable_digest(s) != stable_digest(s.rename("y"))


def test_fitted_estimators_and_pipelines_hash_equal_after_a_pickle_round_trip(learnable_split):
    """What a cached stage reads back keys the next stage as the fresh object did (else every rerun misses)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    train, _, pipeline = learnable_split
    features = pipeline.transform(train)
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    model.fit(np.column_stack([features.numeric, features.categorical]), train["_label"])

    for fitted in (model, pipeline):
        assert stable_digest(fitted) == stable_digest(pickle.loads(pickle.dumps(fitted))), type(fitted).__name__
    other = HistGradientBoostingClassifier(max_iter=21, random_state=0)
    other.fit(np.column_stack([features.numeric, features.categorical]), train["_label"])
    assert stable_digest(other) != stable_digest(model)


def test_object_arrays_hash_by_their_values_not_their_pointers():
    names = np.array(["carrier", "origin"], dtype=object)
    assert stable_digest(names) == stable_digest(np.array(["carrier".upper().lower(), "origin"], dtype=object))
    assert stable_digest(names) != stable_digest(np.array(["carrier", "dest"], dtype=object))
