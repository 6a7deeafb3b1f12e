"""Row-level validation with Great Expectations, and the quarantine it feeds.

Great Expectations checks nulls, ranges and categorical sets and reports the
index of every failing row (result format COMPLETE), which is what the
quarantine needs. Two checks happen before it, by hand, because GX cannot
express them per row: missing columns fail the whole dataset at once, and a
value that does not parse as a number or timestamp is caught while coercing
the column's type (GX's type expectations judge a column, not a row).

Invariant, checked on every call: rows_in == rows_kept + rows_quarantined.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from domainflow.config import DatasetSchema, ValidationConfig
from domainflow.data.sources import write_output
from domainflow.pii import mask_frame

LABEL_COLUMN = "_label"
REASON_COLUMN = "_quarantine_reason"
logger = logging.getLogger(__name__)


class DataSchemaError(ValueError):
    """The data lacks columns the schema needs; nothing can be salvaged row by row."""


class QuarantineCeilingExceeded(RuntimeError):
    """Too large a share of rows failed validation to trust the rest."""


@dataclass(frozen=True)
class ValidationOutcome:
    valid: pd.DataFrame
    quarantined: pd.DataFrame
    gx_result: dict[str, Any]
    quarantine_path: str | None = None  # a local path or s3:// URI

    @property
    def rows_in(self) -> int:
        return len(self.valid) + len(self.quarantined)

    @property
    def quarantined_share(self) -> float:
        return len(self.quarantined) / self.rows_in if self.rows_in else 0.0

    def reason_counts(self) -> dict[str, int]:
        reasons = self.quarantined[REASON_COLUMN].str.split("; ").explode()
        return reasons.value_counts().to_dict()


def _check_columns(frame: pd.DataFrame, schema: DatasetSchema) -> None:
    required = [*schema.features, schema.timestamp, schema.target.column]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataSchemaError(
            f"the data lacks the columns {missing} that the schema needs; "
            f"present: {list(frame.columns)}. Fix the data or the data section of the config."
        )


def _coerce(frame: pd.DataFrame, schema: DatasetSchema) -> tuple[pd.DataFrame, list[pd.Series]]:
    """Typed copy of the schema's columns, plus one reason series per parse failure."""
    reasons: list[pd.Series] = []
    columns: dict[str, pd.Series] = {}
    for name in [*schema.numeric_features, schema.target.column]:
        raw = frame[name]
        parsed = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = raw.notna() & parsed.isna()
        reasons.append(_reason(bad, name, "is not a number", raw))
        columns[name] = parsed
    raw_time = frame[schema.timestamp]
    parsed_time = pd.to_datetime(raw_time, errors="coerce", format="mixed")
    if getattr(parsed_time.dt, "tz", None) is not None:
        parsed_time = parsed_time.dt.tz_convert(None)
    reasons.append(_reason(parsed_time.isna(), schema.timestamp, "is not a timestamp", raw_time))
    columns[schema.timestamp] = parsed_time
    for name in schema.categorical_features:
        columns[name] = frame[name].astype("string").astype(object).where(frame[name].notna(), None)
    return pd.DataFrame(columns, index=frame.index), reasons


def _reason(mask: pd.Series, column: str, message: str, raw: pd.Series) -> pd.Series:
    text = pd.Series(pd.NA, index=mask.index, dtype="string")
    if mask.any():
        text[mask] = f"{column} {message}: " + raw[mask].astype("string").fillna("<null>").str.slice(0, 40)
    return text


def _label(typed: pd.DataFrame, schema: DatasetSchema) -> tuple[pd.Series, pd.Series]:
    target = schema.target
    values = typed[target.column]
    if target.positive_above is not None:
        label = (values > target.positive_above).astype("float64")
        bad = pd.Series(False, index=values.index)
    else:
        bad = values.notna() & ~values.isin([0, 1])
        label = values.where(~bad)
    missing = values.isna()
    reason = _reason(bad, target.column, "is not 0 or 1", values)
    if target.missing == "quarantine":
        reason = reason.fillna(_reason(missing, target.column, "is missing", values))
    else:
        label = label.where(~missing, 1.0 if target.missing == "positive" else 0.0)
    return label, reason


def _run_expectations(typed: pd.DataFrame, rules: ValidationConfig) -> tuple[list[pd.Series], dict]:
    """The GX suite over the typed frame; returns a reason series per failing expectation."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    asset = context.data_sources.add_pandas("domainflow").add_dataframe_asset("rows")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": typed})
    suite = gx.ExpectationSuite(name="domainflow-rows")
    for column in rules.not_null:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    for column, (low, high) in rules.ranges.items():
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high))
    for column, allowed in rules.allowed_values.items():
        suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=allowed))
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})

    reasons = []
    for item in result.results:
        failing = item.result.get("unexpected_index_list") or []
        if not failing:
            continue
        config = item.expectation_config
        column = config.kwargs["column"]
        mask = pd.Series(False, index=typed.index)
        mask[failing] = True
        reasons.append(_reason(mask, column, _describe(config.type, config.kwargs), typed[column]))
    return reasons, _summarize(result.to_json_dict())


def _describe(expectation: str, kwargs: dict) -> str:
    if expectation == "expect_column_values_to_be_between":
        return f"outside [{kwargs.get('min_value')}, {kwargs.get('max_value')}]"
    if expectation == "expect_column_values_to_be_in_set":
        return "not in the allowed set"
    if expectation == "expect_column_values_to_not_be_null":
        return "is null"
    return f"fails {expectation}"


def _summarize(result: dict) -> dict:
    """The GX result without the per-row lists, which can hold millions of entries."""
    for item in result.get("results", []):
        for key in ("unexpected_list", "unexpected_index_list", "unexpected_index_query"):
            item.get("result", {}).pop(key, None)
    return json.loads(json.dumps(result, default=str))


def validate_rows(frame: pd.DataFrame, schema: DatasetSchema, rules: ValidationConfig) -> ValidationOutcome:
    """Split `frame` into typed valid rows (with a 0/1 label) and quarantined rows with a reason."""
    _check_columns(frame, schema)
    original = frame.reset_index(drop=True)
    typed, reasons = _coerce(original, schema)
    label, label_reason = _label(typed, schema)
    gx_reasons, gx_result = _run_expectations(typed, rules)
    all_reasons = pd.concat([*reasons, label_reason, *gx_reasons], axis=1)
    has_reason = all_reasons.notna().any(axis=1)
    # Joining per row is slow, so only the (few) failing rows are joined.
    reason = all_reasons.loc[has_reason].apply(lambda row: "; ".join(row.dropna()), axis=1)

    valid = typed.loc[~has_reason].assign(**{LABEL_COLUMN: label[~has_reason].astype(np.int8)})
    quarantined = original.loc[has_reason].assign(**{REASON_COLUMN: reason.astype(object)})
    if len(valid) + len(quarantined) != len(original):
        raise AssertionError("validation lost rows: rows_in != rows_kept + rows_quarantined")
    return ValidationOutcome(valid=valid.reset_index(drop=True), quarantined=quarantined, gx_result=gx_result)


def quarantine_invalid_rows(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    rules: ValidationConfig,
    quarantine_path: Path | str,
) -> ValidationOutcome:
    """Validate, write failing rows to `quarantine_path` (CSV; a local path or s3:// URI), and enforce the ceiling.

    The file is written before the ceiling is checked, so a run that fails on
    it leaves the evidence behind.
    """
    outcome = validate_rows(frame, schema, rules)
    path = None
    if len(outcome.quarantined):
        # The rows as they came, but for personal data (emails, card numbers, ...), shown as its kind.
        path = write_output(str(quarantine_path), mask_frame(outcome.quarantined).to_csv(index=False).encode())
    logger.info(
        "validation rows_in=%d rows_kept=%d rows_quarantined=%d share=%.4f",
        outcome.rows_in, len(outcome.valid), len(outcome.quarantined), outcome.quarantined_share,
    )  # fmt: skip
    if outcome.quarantined_share > rules.max_quarantine_share:
        top = ", ".join(f"{r} ({n})" for r, n in list(outcome.reason_counts().items())[:5])
        raise QuarantineCeilingExceeded(
            f"{len(outcome.quarantined)} of {outcome.rows_in} rows ({outcome.quarantined_share:.1%}) "
            f"failed validation, above validation.max_quarantine_share={rules.max_quarantine_share:.1%}. "
            f"Most common reasons: {top}. Quarantined rows: {path}"
        )
    return ValidationOutcome(outcome.valid, outcome.quarantined, outcome.gx_result, path)
