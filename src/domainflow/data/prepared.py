"""A domain's data as the stages after the data steps take it: its valid rows split by time, and their source."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pandas as pd

from domainflow.config import DatasetSchema, PipelineConfig
from domainflow.data.domains import filter_domain
from domainflow.data.sources import fingerprint_frame
from domainflow.data.split import TimeSplit, split_by_time
from domainflow.data.validation import LABEL_COLUMN, ValidationOutcome, quarantine_invalid_rows
from domainflow.pii import describe_findings, scan_frame


@dataclass(frozen=True)
class DomainData:
    domain: str
    source_fingerprint: str  # the source's identity: it keys caches and the training run
    validation: ValidationOutcome  # the valid rows, and the quarantined ones with their reasons
    split: TimeSplit  # the valid rows by time: train, validation, test, and the held-out months

    @functools.cached_property
    def trained_on(self) -> str:
        """The content of the windows a training reads (train, validation, test): it names the tuning study and
        keys the training run and its judgement. The held-out months after the test window are only replayed,
        so one more month of data there trains nothing again."""
        return "|".join(fingerprint_frame(getattr(self.split, part)) for part in ("train", "validation", "test"))


class PersonalDataFound(ValueError):
    """A feature holds personal data; the message names the column, the kind and the share of rows."""


def stop_on_personal_data(rows: pd.DataFrame, domain: str, schema: DatasetSchema) -> None:
    """Before anything is trained on, written or logged: a feature with personal data stops the domain."""
    checked = [column for column in schema.features if column not in schema.allow_pii_columns and column in rows]
    findings = scan_frame(rows, checked)
    if findings:
        raise PersonalDataFound(
            f"{domain}: personal data in features ({describe_findings(findings)}); remove the column, clean it, "
            "or list it in data.allow_pii_columns if it may be trained on"
        )


def prepare_domain(
    frame: pd.DataFrame, domain: str, source_fingerprint: str, config: PipelineConfig, quarantine_path: str
) -> DomainData:
    """The domain's rows of the source, invalid ones quarantined at `quarantine_path` with a reason, the rest split.

    Only `config`'s domain column, dataset schema, validation rules and split bounds are read.
    """
    rows = filter_domain(frame, config.domains.column, domain)
    stop_on_personal_data(rows, domain, config.data)
    validation = quarantine_invalid_rows(rows, config.data, config.validation, quarantine_path)
    split = split_by_time(validation.valid, config.data.timestamp, LABEL_COLUMN, config.split)
    return DomainData(domain=domain, source_fingerprint=source_fingerprint, validation=validation, split=split)
