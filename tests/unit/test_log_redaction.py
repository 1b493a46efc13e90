"""The PHI-redacting log filter."""

from __future__ import annotations

import logging

import pytest

from loaders.log_redaction import PhiRedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ('payload {"resourceType": "Patient", "name": [{"family": "Doe"}]} end', "Doe"),
        ("ssn 999-12-3456 found", "999-12-3456"),
        ("mrn MRN-00012345 duplicated", "00012345"),
        ("mail jane.doe@example.org", "jane.doe"),
        ("call 555-123-4567", "555-123-4567"),
        ("born 1957-03-14", "1957-03-14"),
        ("id 0b7c3e1a-8f7e-4a52-9a55-3d1f7b2c9e10", "0b7c3e1a"),
    ],
)
def test_redact_removes_phi_shaped_text(text: str, leaked: str) -> None:
    assert leaked not in redact(text)


def test_timestamps_and_plain_counts_survive() -> None:
    text = "run 20261122T043035Z-de9c0b at 2026-11-22T04:30:35Z: 1,204 resources"
    assert redact(text) == text


def test_filter_redacts_arguments_and_exception_text() -> None:
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "patient %s", ("999-12-3456",), None
    )
    try:
        raise ValueError("MRN-12345678 is wrong")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert PhiRedactingFilter().filter(record)
    assert "999-12-3456" not in record.getMessage()
    assert record.exc_text is not None and "12345678" not in record.exc_text
