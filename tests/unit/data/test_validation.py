from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from domainflow.config import DatasetSchema, TargetSpec, ValidationConfig
from domainflow.data.validation import (
    LABEL_COLUMN,
    REASON_COLUMN,
    DataSchemaError,
    QuarantineCeilingExceeded,
    quarantine_invalid_rows,
    validate_rows,
)

ROWS = 40
# Row position -> (column, the word the reason must hold).
BAD = {
    0: ("distance", "is not a number"),
    1: ("humid", "outside"),
    2: ("carrier", "is null"),
    3: ("scheduled_departure", "is not a timestamp"),
}
MISSING_TARGET_ROW = 4


def raw_frame(flights_factory) -> pd.DataFrame:
    """Raw rows as a CSV would give them (timestamps as text), with one problem per bad row."""
    frame = flights_factory(ROWS, seed=5)
    frame["distance"] = frame["distance"].astype(object)
    frame["scheduled_departure"] = frame["scheduled_departure"].dt.strftime("%Y-%m-%d %H:%M:%S").astype(object)
    frame.loc[0, "distance"] = "far away"
    frame.loc[1, "humid"] = 150.0
    frame.loc[2, "carrier"] = None
    frame.loc[3, "scheduled_departure"] = "not a date"
    frame.loc[MISSING_TARGET_ROW, "arr_delay"] = np.nan
    # A null in a numeric feature without not_null is kept (the pipeline imputes it).
    frame.loc[5, "temp"] = np.nan
    # Non-default index: quarantine must still line up with the right rows.
    frame.index = frame.index * 10 + 3
    return frame


@pytest.fixture(scope="module")
def raw(flights_factory):
    return raw_frame(flights_factory)


@pytest.fixture(scope="module", params=["positive", "negative", "quarantine"])
def outcome(request, raw):
    schema = DatasetSchema(target=TargetSpec(missing=request.param))
    return request.param, validate_rows(raw, schema, ValidationConfig())


def test_each_bad_row_is_quarantined_with_its_column(outcome, raw):
    policy, result = outcome
    for position, (column, words) in BAD.items():
        # sched_dep_hour is a distinct float per row: it identifies the row.
        hour = raw.iloc[position]["sched_dep_hour"]
        match = result.quarantined[result.quarantined["sched_dep_hour"] == hour]
        assert len(match) == 1, f"row {position} ({column}) not quarantined under {policy}"
        reason = match[REASON_COLUMN].iloc[0]
        assert column in reason and words in reason, reason


def test_rows_are_conserved(outcome, raw):
    policy, result = outcome
    assert result.rows_in == len(raw) == len(result.valid) + len(result.quarantined)
    expected_bad = len(BAD) + (policy == "quarantine")
    assert len(result.quarantined) == expected_bad
    assert result.quarantined_share == pytest.approx(expected_bad / ROWS)


def test_quarantine_keeps_raw_values(outcome, raw):
    _, result = outcome
    quarantined = result.quarantined
    assert "far away" in quarantined["distance"].tolist()
    assert "not a date" in quarantined["scheduled_departure"].tolist()
    # Raw columns outside the schema are kept too.
    assert "origin" in quarantined.columns
    assert set(quarantined.columns) == {*raw.columns, REASON_COLUMN}


def test_missing_target_follows_the_policy(outcome, raw):
    policy, result = outcome
    hour = raw.iloc[MISSING_TARGET_ROW]["sched_dep_hour"]
    kept = result.valid.loc[result.valid["sched_dep_hour"] == hour]
    if policy == "quarantine":
        assert kept.empty
        row = result.quarantined.loc[result.quarantined["sched_dep_hour"] == hour]
        assert row[REASON_COLUMN].iloc[0].startswith("arr_delay is missing")
    else:
        assert len(kept) == 1
        assert kept[LABEL_COLUMN].iloc[0] == (1 if policy == "positive" else 0)


def test_labels_are_arrival_delay_over_fifteen(outcome):
    _, result = outcome
    valid = result.valid.dropna(subset=["arr_delay"])
    assert set(result.valid[LABEL_COLUMN].unique()) <= {0, 1}
    assert (valid[LABEL_COLUMN] == (valid["arr_delay"] > 15).astype(int)).all()
    assert 0 < valid[LABEL_COLUMN].mean() < 1


def test_valid_rows_are_typed(outcome):
    _, result = outcome
    valid = result.valid
    assert pd.api.types.is_datetime64_any_dtype(valid["scheduled_departure"])
    assert pd.api.types.is_float_dtype(valid["distance"])
    assert list(valid.index) == list(range(len(valid)))
    # The kept null temperature is still null (imputed later, not here).
    assert valid["temp"].isna().sum() == 1


def test_reason_counts_and_public_result(outcome):
    _, result = outcome
    counts = result.reason_counts()
    assert sum(counts.values()) >= len(BAD)
    assert any(reason.startswith("humid outside") for reason in counts)
    # Per-row index lists are stripped from the GX result.
    for item in result.gx_result["results"]:
        assert "unexpected_index_list" not in item["result"]
        assert "unexpected_list" not in item["result"]
    assert result.gx_result["success"] is False


def test_missing_columns_are_named(flights_factory):
    frame = flights_factory(5).drop(columns=["visib", "dest"])
    with pytest.raises(DataSchemaError, match=r"\['visib', 'dest'\]"):
        validate_rows(frame, DatasetSchema(), ValidationConfig())


def test_missing_timestamp_or_target_column_is_named(flights_factory):
    with pytest.raises(DataSchemaError, match="arr_delay"):
        validate_rows(flights_factory(5).drop(columns=["arr_delay"]), DatasetSchema(), ValidationConfig())


def test_zero_one_target_and_allowed_values(flights_factory):
    frame = flights_factory(12, seed=8)
    frame["arr_delay"] = [0, 1, 2, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    frame.loc[5, "dest"] = "XXX"
    schema = DatasetSchema(target=TargetSpec(positive_above=None))
    rules = ValidationConfig(allowed_values={"dest": ["ATL", "BOS", "LAX", "ORD", "MIA", "SFO"]})
    result = validate_rows(frame, schema, rules)
    reasons = sorted(result.quarantined[REASON_COLUMN])
    assert reasons == ["arr_delay is not 0 or 1: 2.0", "dest not in the allowed set: XXX"]
    assert result.valid[LABEL_COLUMN].tolist() == [0, 1, 1, 0, 0, 1, 0, 1, 0, 1]


def test_tz_aware_timestamps_become_naive(flights_factory):
    frame = flights_factory(6, seed=2)
    frame["scheduled_departure"] = frame["scheduled_departure"].dt.tz_localize("UTC")
    result = validate_rows(frame, DatasetSchema(), ValidationConfig())
    assert len(result.valid) == 6
    assert result.valid["scheduled_departure"].dt.tz is None


def test_quarantine_file_written_and_ceiling_enforced(raw, tmp_path):
    path = tmp_path / "q" / "EWR.csv"
    with pytest.raises(QuarantineCeilingExceeded, match="max_quarantine_share") as error:
        quarantine_invalid_rows(raw, DatasetSchema(), ValidationConfig(), path)
    assert str(path) in str(error.value)
    assert "4 of 40 rows" in str(error.value)
    written = pd.read_csv(path)
    assert len(written) == len(BAD)
    assert REASON_COLUMN in written.columns
    assert "far away" in written["distance"].astype(str).tolist()


def test_quarantine_under_the_ceiling_returns_the_path(raw, tmp_path):
    path = tmp_path / "EWR.csv"
    result = quarantine_invalid_rows(raw, DatasetSchema(), ValidationConfig(max_quarantine_share=0.2), path)
    assert result.quarantine_path == str(path)
    assert path.is_file()
    assert len(result.valid) == ROWS - len(BAD)


def test_clean_data_writes_no_file(flights_factory, tmp_path):
    path = tmp_path / "clean.csv"
    result = quarantine_invalid_rows(flights_factory(20, seed=4), DatasetSchema(), ValidationConfig(), path)
    assert result.quarantine_path is None
    assert not path.exists()
    assert len(result.valid) == 20 and result.quarantined.empty
