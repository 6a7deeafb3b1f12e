"""A domain's data as the stages after the data steps take it: its valid rows split by time, and their source."""

from __future__ import annotations

from dataclasses import dataclass

from domainflow.data.split import TimeSplit
from domainflow.data.validation import ValidationOutcome


@dataclass(frozen=True)
class DomainData:
    domain: str
    source_fingerprint: str  # the source's identity: it keys caches and the training run
    validation: ValidationOutcome  # the valid rows, and the quarantined ones with their reasons
    split: TimeSplit  # the valid rows by time: train, validation, test, and the held-out months
