from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from domainflow.data.features import FeaturePipeline


@pytest.fixture
def train():
    rng = np.random.default_rng(4)
    rows = 200
    return pd.DataFrame(
        {
            "distance": rng.normal(1_000, 300, size=rows),
            "temp": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(50, 10, size=rows)),
            "carrier": rng.choice(["AA", "DL", "UA"], size=rows, p=[0.5, 0.3, 0.2]),
            "dest": np.array(["BOS"] * 100 + ["LAX"] * 95 + ["SFO"] * 5, dtype=object),
        }
    )


@pytest.fixture
def pipeline(train):
    return FeaturePipeline(["distance", "temp"], ["carrier", "dest"]).fit(train)


def test_numeric_features_are_scaled_on_train(pipeline, train):
    matrix = pipeline.transform(train)
    assert matrix.numeric.dtype == np.float32
    # distance, temp, and the missing-indicator for temp.
    assert matrix.numeric.shape == (200, 3) == (len(train), pipeline.numeric_width)
    np.testing.assert_allclose(matrix.numeric[:, 0].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(matrix.numeric[:, 0].std(), 1, atol=1e-3)


def test_scaling_comes_from_train_only(pipeline, train):
    shifted = train.assign(distance=train["distance"] + 10_000)
    assert pipeline.transform(shifted).numeric[:, 0].mean() > 10


def test_missing_numeric_is_imputed_with_an_indicator(pipeline, train):
    frame = train.head(4).copy()
    frame.loc[:, "distance"] = np.nan
    frame.loc[:, "temp"] = [np.nan, 40.0, np.nan, 60.0]
    matrix = pipeline.transform(frame)
    assert not np.isnan(matrix.numeric).any()
    indicator = matrix.numeric[:, 2]
    assert indicator[0] > indicator[1] and indicator[2] > indicator[3]
    # A median-imputed distance is the same for every row.
    assert len(set(matrix.numeric[:, 0].tolist())) == 1


def test_unseen_missing_and_rare_categories_map_to_zero(pipeline, train):
    frame = train.head(4).copy()
    frame["carrier"] = ["ZZ", None, "AA", "DL"]
    frame["dest"] = ["BOS", "LAX", "SFO", "NOPE"]
    codes = pipeline.transform(frame).categorical
    assert codes.dtype == np.int64
    assert codes[0, 0] == 0 and codes[1, 0] == 0
    assert codes[2, 0] > 0 and codes[3, 0] > 0 and codes[2, 0] != codes[3, 0]
    assert codes[3, 1] == 0
    # SFO (5 rows, below min_category_count=20) is bucketed apart from BOS/LAX but not unknown.
    assert len({codes[0, 1], codes[1, 1], codes[2, 1]}) == 3


def test_cardinalities_cover_every_code(pipeline, train):
    codes = pipeline.transform(train).categorical
    cardinalities = pipeline.cardinalities
    assert len(cardinalities) == 2
    for column, size in enumerate(cardinalities):
        assert codes[:, column].max() < size
        assert codes[:, column].min() >= 1  # every training value is known
    # carrier: 3 frequent + unknown; dest: 2 frequent + 1 infrequent bucket + unknown.
    assert cardinalities == [4, 4]


def test_transform_does_not_mutate_input(pipeline, train):
    before = train.copy()
    frame = train.copy()
    frame.loc[0, "carrier"] = None
    snapshot = frame.copy()
    pipeline.transform(frame)
    pd.testing.assert_frame_equal(frame, snapshot)
    pipeline.fit(before)
    pd.testing.assert_frame_equal(before, train)


def test_numeric_only_and_categorical_only_pipelines(train):
    numeric_only = FeaturePipeline(["distance"], []).fit(train)
    matrix = numeric_only.transform(train)
    assert matrix.categorical.shape == (200, 0)
    assert numeric_only.cardinalities == []
    categorical_only = FeaturePipeline([], ["carrier"]).fit(train)
    matrix = categorical_only.transform(train)
    assert matrix.numeric.shape == (200, 0)
    assert categorical_only.numeric_width == 0


def test_pipeline_survives_pickling(pipeline, train):
    import pickle

    restored = pickle.loads(pickle.dumps(pipeline))
    np.testing.assert_array_equal(restored.transform(train).numeric, pipeline.transform(train).numeric)
    np.testing.assert_array_equal(restored.transform(train).categorical, pipeline.transform(train).categorical)


def test_categories_sent_as_numbers_match_their_string_form():
    train = pd.DataFrame({"distance": [1.0] * 60, "gate": ["1"] * 30 + ["2"] * 30})
    pipeline = FeaturePipeline(["distance"], ["gate"]).fit(train)
    as_strings = pipeline.transform(pd.DataFrame({"distance": [1.0, 1.0], "gate": ["1", "2"]}))
    as_numbers = pipeline.transform(pd.DataFrame({"distance": [1.0, 1.0], "gate": [1, 2]}))
    assert (as_numbers.categorical == as_strings.categorical).all()
    assert (as_numbers.categorical > 0).all()


def _served_rows(rng, rows: int) -> pd.DataFrame:
    """What a server receives: missing numbers, unseen, rare and missing categories, numbers as categories."""
    return pd.DataFrame(
        {
            "distance": np.where(rng.random(rows) < 0.2, np.nan, rng.normal(1_000, 300, size=rows)),
            "temp": np.where(rng.random(rows) < 0.3, np.nan, rng.normal(50, 10, size=rows)),
            "carrier": rng.choice(np.array(["AA", "DL", "UA", "ZZ", None], dtype=object), size=rows),
            "dest": rng.choice(np.array(["BOS", "LAX", "SFO", "JFK", 7, None], dtype=object), size=rows),
        }
    )


@pytest.mark.parametrize("rows", [1, 3, 500])
def test_the_compiled_transform_equals_sklearns(pipeline, rows):
    served = _served_rows(np.random.default_rng(rows), rows)
    fast, reference = pipeline.transform(served), pipeline.transform_with_sklearn(served)
    np.testing.assert_allclose(fast.numeric, reference.numeric, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(fast.categorical, reference.categorical)
    assert fast.numeric.dtype == np.float32 and fast.categorical.dtype == np.int64


def test_a_column_missing_in_all_training_rows_is_dropped_as_sklearn_drops_it(train):
    pipeline = FeaturePipeline(["distance", "temp"], ["carrier"]).fit(train.assign(temp=np.nan))
    served = _served_rows(np.random.default_rng(0), 50)
    fast, reference = pipeline.transform(served), pipeline.transform_with_sklearn(served)
    assert fast.numeric.shape == reference.numeric.shape == (50, pipeline.numeric_width)
    np.testing.assert_allclose(fast.numeric, reference.numeric, rtol=1e-6, atol=1e-6)


def test_transforming_leaves_the_pipelines_identity_alone(pipeline, train):
    """Cache keys hash the pipeline: using it must not change its hash (the compiled transform is derived)."""
    from domainflow.hashing import stable_digest

    fresh = FeaturePipeline(["distance", "temp"], ["carrier", "dest"]).fit(train)
    before = stable_digest(fresh)
    fresh.transform(train)
    assert stable_digest(fresh) == before
