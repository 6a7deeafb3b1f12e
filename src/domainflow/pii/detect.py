"""Detectors of personal data in values, a column scan, and masking.

Each kind is a regular expression that finds candidates, and for cards and addresses a check
that confirms them (Luhn; `ipaddress`), so a flight number or a time of day is not an address.
A column is scanned by its distinct values (a categorical column holds few), each value once,
and a finding counts the rows that hold it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: str) -> bool:
    digits = re.sub(r"[ -]", "", match)
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _ip(match: str) -> bool:
    try:
        ipaddress.ip_address(match)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _Kind:
    name: str
    pattern: re.Pattern
    confirm: Callable[[str], bool] = lambda match: True

    def found_in(self, text: str) -> bool:
        return any(self.confirm(m.group(0)) for m in self.pattern.finditer(text))

    def masked(self, text: str) -> str:
        return self.pattern.sub(lambda m: f"<{self.name}>" if self.confirm(m.group(0)) else m.group(0), text)


# Order matters for masking: a card number is masked before its digits could read as a phone number.
KINDS: tuple[_Kind, ...] = (
    _Kind("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
    _Kind("payment_card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _card),
    _Kind("us_ssn", re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")),
    _Kind(
        "phone",
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\d)"
            r"|(?<![\w+])\+\d{10,15}(?!\d)"
        ),
    ),  # fmt: skip
    _Kind(
        "ip_address",
        re.compile(
            r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})"
            r"(?![\w.:])"
        ),
        _ip,
    ),  # fmt: skip
)


@dataclass(frozen=True)
class PiiFinding:
    column: str
    kind: str
    rows: int  # rows whose value holds it
    share: float  # of the column's non-missing rows

    def describe(self) -> str:
        return f"{self.column}: {self.kind} in {self.rows:,} rows ({self.share:.1%})"


def scan_frame(frame: pd.DataFrame, columns: Iterable[str]) -> list[PiiFinding]:
    """Every (column, kind) with at least one row holding that kind of personal data."""
    findings = []
    for column in columns:
        values = frame[column].dropna()
        if values.empty or pd.api.types.is_float_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue  # a float or a flag holds no address, number or name that these kinds describe
        counts = values.astype("string").value_counts()
        for kind in KINDS:
            rows = int(sum(count for value, count in counts.items() if kind.found_in(value)))
            if rows:
                findings.append(PiiFinding(column, kind.name, rows, rows / len(values)))
    return findings


def describe_findings(findings: Iterable[PiiFinding]) -> str:
    return "; ".join(finding.describe() for finding in findings)


def mask_text(text: str) -> str:
    """`text` with each piece of personal data replaced by its kind: "<email>", "<payment_card>", ..."""
    for kind in KINDS:
        text = kind.masked(text)
    return text


def mask_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text columns have their personal data masked (numbers stay: they hold none of these kinds,
    except a card number stored as an integer, which is masked too)."""
    return mask_columns(frame, list(frame.columns))


def mask_columns(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """A copy with the personal data in `columns` (those it has) masked, as mask_frame does."""
    masked = frame.copy()
    for column in [c for c in columns if c in masked.columns]:
        values = masked[column]
        if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
            masked[column] = values.map(lambda v: mask_text(v) if isinstance(v, str) else v)
        elif pd.api.types.is_integer_dtype(values) and len(values) and values.abs().max() >= 10**12:
            masked[column] = values.astype(object).map(lambda v: "<payment_card>" if _card(str(v)) else v)
    return masked
