"""Domains: the slices of the data that each get their own model."""

from __future__ import annotations

import pandas as pd

from domainflow.config import DomainSpec, unsafe_domain_names
from domainflow.pii import mask_text


class DomainError(ValueError):
    """The domain configuration does not match the data."""


def select_domains(frame: pd.DataFrame, spec: DomainSpec) -> list[str]:
    """The domains to train: the configured values, or every value with `min_rows` rows."""
    if spec.column not in frame.columns:
        raise DomainError(f"domain column {spec.column!r} is not in the data; columns: {list(frame.columns)}")
    counts = frame[spec.column].astype("string").value_counts()
    if spec.values is not None:
        missing = [v for v in spec.values if counts.get(v, 0) == 0]
        if missing:
            raise DomainError(
                f"domains {missing} have no rows in column {spec.column!r}; values present: "
                f"{mask_text(str(sorted(counts.index.tolist())[:20]))}"
            )
        return list(spec.values)
    selected = sorted(counts[counts >= spec.min_rows].index.tolist())
    if not selected:
        raise DomainError(f"no value of {spec.column!r} has at least {spec.min_rows} rows; lower domains.min_rows")
    unsafe = unsafe_domain_names(selected)
    if unsafe:
        raise DomainError(
            f"values {mask_text(str(unsafe[:10]))} of {spec.column!r} cannot name a domain (letters, digits, '_', "
            "'.' and '-', at most 64 characters: a name is part of folder, model and URL names); clean the column, "
            "or list the domains to train in domains.values"
        )
    return selected


def filter_domain(frame: pd.DataFrame, column: str, domain: str) -> pd.DataFrame:
    """The rows of one domain, as a new frame."""
    if column not in frame.columns:
        raise DomainError(f"domain column {column!r} is not in the data")
    return frame.loc[frame[column].astype("string") == domain].copy()
