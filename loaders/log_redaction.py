"""A logging filter that removes PHI-shaped text from every log record before it is written.

Code in fhir-elt never logs payloads or identifiers on purpose; this filter is the net under
that rule, for messages from libraries (dlt, httpx, duckdb) and for mistakes. It rewrites the
formatted message and any exception text, replacing resource payloads, SSN- and MRN-shaped
values, e-mail addresses, phone numbers, calendar dates and UUIDs.

Log records also carry the run id and the HTTP request id they belong to (:func:`bind_run_id`,
:func:`bind_request_id`), and are written as one JSON object per line when stderr is not a
terminal (CI, schedulers), as text otherwise (:func:`configure_logging`).
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Literal

import orjson

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


LogFormat = Literal["auto", "json", "text"]

# The run a process is working on (one per process; worker threads log for it too) and the HTTP
# request a thread is handling (set per attempt, so it follows the thread's own records).
_run_lock = threading.Lock()
_run_id: str | None = None
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fhir_elt_request_id", default=None
)


def bind_run_id(run_id: str | None) -> None:
    """Stamp every later record of this process with ``run_id`` (None clears it)."""
    global _run_id
    with _run_lock:
        _run_id = run_id


def bind_request_id(request_id: str | None) -> None:
    """Stamp this thread's later records with ``request_id`` (the ``X-Request-Id`` sent)."""
    _request_id.set(request_id)


def current_ids() -> tuple[str | None, str | None]:
    """The bound run id and this thread's request id."""
    return _run_id, _request_id.get()


class ContextFilter(logging.Filter):
    """Adds ``run_id`` and ``request_id`` attributes to every record (None when unbound)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the ids on ``record``; never drops it."""
        run_id, request_id = current_ids()
        if getattr(record, "run_id", None) is None:
            record.run_id = run_id
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, run and request ids.

    The message and exception text are what :class:`PhiRedactingFilter` left (it runs first).
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single JSON line."""
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry).decode()


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [
            f"{name}={value}"
            for name in ("run_id", "request_id")
            if (value := getattr(record, name, None))
        ]
        return f"{text} [{' '.join(ids)}]" if ids else text


def _formatter(log_format: LogFormat) -> logging.Formatter:
    chosen = log_format
    if chosen == "auto":
        chosen = os.environ.get("FHIR_ELT_LOG_FORMAT", "auto")  # type: ignore[assignment]
    if chosen not in ("json", "text"):
        chosen = "text" if sys.stderr.isatty() else "json"
    if chosen == "json":
        return JsonFormatter()
    return _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def _protected_handler(formatter: logging.Formatter) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    handler.addFilter(PhiRedactingFilter())
    handler.addFilter(ContextFilter())
    return handler


def configure_logging(level: int = logging.INFO, log_format: LogFormat = "auto") -> None:
    """Log to stderr through the redacting filter; covers every logger, libraries' included.

    Args:
        level: The root level.
        log_format: ``json`` (one object per line), ``text``, or ``auto``: the environment
            variable ``FHIR_ELT_LOG_FORMAT`` if set, else JSON unless stderr is a terminal.
    """
    formatter = _formatter(log_format)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(_protected_handler(formatter))
    root.setLevel(level)
    # dlt logs through its own non-propagating "dlt" logger and reuses the first handler it
    # finds there, so a redacting handler placed there first carries dlt's records too.
    dlt_logger = logging.getLogger("dlt")
    for existing in list(dlt_logger.handlers):
        dlt_logger.removeHandler(existing)
    dlt_handler = _protected_handler(formatter)
    dlt_handler.addFilter(_ExpectedDltNotices())
    dlt_logger.addHandler(dlt_handler)
    dlt_logger.propagate = False  # as dlt sets it itself: one line per record, not two
    # Any other library logger that does not propagate writes through its own handlers: those
    # get the redacting filter too (httpx propagates to the root and is covered there).
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger) or logger.propagate or logger is dlt_logger:
            continue
        for handler in logger.handlers:
            if not any(isinstance(f, PhiRedactingFilter) for f in handler.filters):
                handler.addFilter(PhiRedactingFilter())
                handler.addFilter(ContextFilter())


class _ExpectedDltNotices(logging.Filter):
    """Drops dlt's notice that arrow string columns were kept as JSON: that is the design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "several column hints were different" not in record.getMessage()
