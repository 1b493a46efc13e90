"""Structured logs: JSON off a terminal, run and request ids, redaction on every logger."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from loaders.log_redaction import bind_request_id, bind_run_id, configure_logging

CANARY_SSN = "999-12-3456"
CANARY_MAIL = "jane.canary@example.org"


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Logging configured per test onto pytest's captured stderr (not a terminal); restored."""
    monkeypatch.delenv("FHIR_ELT_LOG_FORMAT", raising=False)
    root = logging.getLogger()
    dlt_logger = logging.getLogger("dlt")
    saved = (list(root.handlers), root.level, list(dlt_logger.handlers), dlt_logger.propagate)
    yield capsys
    bind_run_id(None)
    bind_request_id(None)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    dlt_logger.handlers[:] = saved[2]
    dlt_logger.propagate = saved[3]


def _text(capture: Any) -> str:
    return capture.readouterr().err


def _lines(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_carry_run_and_request_ids_and_no_phi(stderr: Any) -> None:
    configure_logging(logging.INFO)
    bind_run_id("20261122T040000Z-abcdef")
    bind_request_id("5f0c3b1e9d2a4c6b8e7f1a2b3c4d5e6f")
    logging.getLogger("loaders.http.client").warning("Patient: retry after %s", CANARY_SSN)
    logging.getLogger("httpx").info("HTTP Request: GET %s", f"mailto:{CANARY_MAIL}")
    logging.getLogger("dlt").warning("dlt saw %s", CANARY_SSN)

    text = _text(stderr)
    lines = _lines(text)
    assert [line["logger"] for line in lines] == ["loaders.http.client", "httpx", "dlt"]
    for line in lines:
        assert line["run_id"] == "20261122T040000Z-abcdef"
        assert line["request_id"] == "5f0c3b1e9d2a4c6b8e7f1a2b3c4d5e6f"
        assert set(line) >= {"ts", "level", "message"}
    assert CANARY_SSN not in text and CANARY_MAIL not in text
    assert "[REDACTED SSN]" in lines[0]["message"]


def test_request_ids_belong_to_their_thread(stderr: Any) -> None:
    configure_logging(logging.INFO, "json")
    bind_run_id("20261122T040000Z-abcdef")
    bind_request_id("aaaa")

    def worker() -> None:
        bind_request_id("bbbb")
        logging.getLogger("loaders.rest.runner").warning("from a worker")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    logging.getLogger("loaders").warning("from the main thread")

    by_message = {line["message"]: line for line in _lines(_text(stderr))}
    assert by_message["from a worker"]["request_id"] == "bbbb"
    assert by_message["from a worker"]["run_id"] == "20261122T040000Z-abcdef"
    assert by_message["from the main thread"]["request_id"] == "aaaa"


def test_exceptions_are_redacted_in_json(stderr: Any) -> None:
    configure_logging(logging.INFO, "json")
    try:
        raise ValueError(f"bad row {CANARY_SSN}")
    except ValueError:
        logging.getLogger("duckdb").exception("merge failed")
    (line,) = _lines(_text(stderr))
    assert "ValueError" in line["exception"] and CANARY_SSN not in line["exception"]


def test_text_format_when_asked(stderr: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_ELT_LOG_FORMAT", "text")
    configure_logging(logging.INFO)
    bind_run_id("20261122T040000Z-abcdef")
    logging.getLogger("loaders").warning("plain %s", CANARY_SSN)
    text = _text(stderr)
    assert "WARNING loaders: plain [REDACTED SSN] [run_id=20261122T040000Z-abcdef]" in text
    assert not text.startswith("{")


def test_library_loggers_that_do_not_propagate_are_covered(stderr: Any) -> None:
    private = logging.getLogger("some_library")
    handler = logging.StreamHandler()  # writes to the patched sys.stderr
    private.addHandler(handler)
    private.propagate = False
    try:
        configure_logging(logging.INFO, "json")
        private.warning("leaked %s", CANARY_SSN)
        text = _text(stderr)
        assert CANARY_SSN not in text
        assert "[REDACTED SSN]" in text
    finally:
        private.removeHandler(handler)
        private.propagate = True
