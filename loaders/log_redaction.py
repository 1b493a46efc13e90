"""A logging filter that removes PHI-shaped text from every log record before it is written.

Code in fhir-elt never logs payloads or identifiers on purpose; this filter is the net under
that rule, for messages from libraries (dlt, httpx, duckdb) and for mistakes. It rewrites the
formatted message and any exception text, replacing resource payloads, SSN- and MRN-shaped
values, e-mail addresses, phone numbers, calendar dates and UUIDs.
"""

from __future__ import annotations

import logging
import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A JSON object that carries a resourceType is a resource payload: drop all of it.
    (re.compile(r"\{[^{}]*\"resourceType\".*\}", re.DOTALL), "[REDACTED RESOURCE]"),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "[REDACTED SSN]"),
    (re.compile(r"\bMRN[-:\s]*[A-Za-z0-9-]+", re.IGNORECASE), "[REDACTED MRN]"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "[REDACTED EMAIL]"),
    (re.compile(r"(?<![\w-])\(?\d{3}\)?[ .-]\d{3}-\d{4}\b"), "[REDACTED PHONE]"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "[REDACTED ID]",
    ),
    # Dates without a time of day are how birth dates appear; timestamps are left alone.
    (re.compile(r"\b(?:19|20)\d{2}-[01]\d-[0-3]\d\b(?!T)"), "[REDACTED DATE]"),
)


def redact(text: str) -> str:
    """``text`` with PHI-shaped substrings replaced by labels."""
    for pattern, label in _PATTERNS:
        text = pattern.sub(label, text)
    return text


class PhiRedactingFilter(logging.Filter):
    """Redacts each record's message and exception text in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` so that formatting it cannot reveal PHI."""
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr through the redacting filter; covers every logger, libraries' included."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PhiRedactingFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # dlt logs through its own non-propagating "dlt" logger and reuses the first handler it
    # finds there, so a redacting handler placed there first carries dlt's records too.
    dlt_logger = logging.getLogger("dlt")
    for existing in list(dlt_logger.handlers):
        dlt_logger.removeHandler(existing)
    dlt_handler = logging.StreamHandler()
    dlt_handler.addFilter(PhiRedactingFilter())
    dlt_handler.addFilter(_ExpectedDltNotices())
    dlt_logger.addHandler(dlt_handler)


class _ExpectedDltNotices(logging.Filter):
    """Drops dlt's notice that arrow string columns were kept as JSON: that is the design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "several column hints were different" not in record.getMessage()
