"""Personal data in a dataset's columns: found before training, masked wherever values are shown.

Patterns of our own (email, phone number, US social security number, payment card number with
its Luhn check, IPv4/IPv6 address): Microsoft Presidio's recognizers need a spaCy model download
for its default engine, which this project may not fetch at run time.
"""

from domainflow.pii.detect import (
    KINDS,
    PiiFinding,
    describe_findings,
    mask_columns,
    mask_frame,
    mask_text,
    scan_frame,
)

__all__ = ["KINDS", "PiiFinding", "describe_findings", "mask_columns", "mask_frame", "mask_text", "scan_frame"]
