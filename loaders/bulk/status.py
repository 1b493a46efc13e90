"""Poll a Bulk Data job's status URL until its manifest is ready, within one run's patience.

What each answer means (IG STU2, "Bulk Data Status Request"):

==========================================  ==================================================
Answer                                      What happens
==========================================  ==================================================
202                                         in progress: ``X-Progress`` is reported, the next
                                            poll waits ``Retry-After`` (seconds or HTTP-date),
                                            shortened to ``max_interval`` and at least
                                            ``min_interval``; ``default_interval`` without one
200 with a JSON object                      complete: the manifest (page) is returned
429                                         polled too often: wait ``Retry-After`` and go on
5xx without an OperationOutcome, or with    a transient failure: wait (``Retry-After`` or
only transient issue codes (``transient``,  backoff) and poll again; ``max_errors`` in a row
``throttled``, ``timeout``, ...), no fatal  end the run (the job stays checkpointed)
404 / 410                                   :class:`ExportJobGone` (expired, deleted)
other 4xx / 5xx                             :class:`ExportJobFailed` with the issue codes
==========================================  ==================================================

A run does not wait for ever: once waiting longer would pass ``max_wait`` seconds since the
first poll, :func:`wait_for_complete` returns :class:`Pending` and the job is left, checkpointed,
for the next scheduled run (large Epic exports take days). A stop signal (Ctrl-C, SIGTERM)
also returns :class:`Pending` at once. Tokens are refreshed by the client between polls, so a
job that takes hours survives token expiry.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loaders.exceptions import MalformedResponseError, RequestRejected, RetriesExhausted
from loaders.http import FhirHttpClient, HttpAnswer, parse_http_date, parse_retry_after
from loaders.http.client import utc_now

logger = logging.getLogger(__name__)

# IssueType codes under "transient" (https://hl7.org/fhir/R4/valueset-issue-type.html), except
# "exception", which servers use for a job that failed.
TRANSIENT_CODES = frozenset(
    {"transient", "lock-error", "no-store", "timeout", "incomplete", "throttled"}
)
POLL_ANSWERS = frozenset({400, 404, 410, 422, 429, 500, 501, 502, 503, 504})
_PROGRESS = re.compile(r"[^ -~]")
_MAX_PROGRESS_CHARS = 80


class ExportJobFailed(RequestRejected):
    """The server reports the export job failed (an error status with an OperationOutcome)."""


class ExportJobGone(RequestRejected):
    """The status URL is unknown to the server (404/410): the job expired or was deleted."""


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How patiently a run polls.

    Attributes:
        min_interval: The shortest wait between polls.
        default_interval: The wait when the server sends no ``Retry-After``.
        max_interval: A longer ``Retry-After`` is shortened to this.
        max_wait: Seconds one run spends waiting before it leaves the job for the next run.
        max_errors: Transient failures in a row that end the run.
    """

    min_interval: float = 1.0
    default_interval: float = 10.0
    max_interval: float = 300.0
    max_wait: float = 3600.0
    max_errors: int = 8


@dataclass(frozen=True, slots=True)
class Complete:
    """The job finished: the status answer's JSON body (a manifest page)."""

    body: dict[str, Any]
    polls: int


@dataclass(frozen=True, slots=True)
class Pending:
    """The job is still running; this run stops waiting.

    Attributes:
        progress: The last ``X-Progress`` (sanitised), if any.
        polls: Polls made in this run.
        waited_seconds: Time spent in this run.
        next_poll_seconds: The wait the server asked for before the next poll.
        paused: True when a stop signal, not the time budget, ended the wait.
    """

    progress: str | None
    polls: int
    waited_seconds: float
    next_poll_seconds: float
    paused: bool = False


def safe_progress(value: str | None) -> str | None:
    """``X-Progress`` fit for a log line: printable ASCII, at most 80 characters."""
    if not value:
        return None
    text = _PROGRESS.sub("?", value.strip())[:_MAX_PROGRESS_CHARS]
    return text or None


def _retry_after(answer: HttpAnswer, now: datetime) -> float | None:
    return parse_retry_after(
        answer.headers.get("Retry-After"), parse_http_date(answer.headers.get("Date")) or now
    )


def _failure(answer: HttpAnswer, what: str) -> ExportJobFailed | ExportJobGone:
    codes = answer.issue_codes()
    issues = f" (OperationOutcome issue codes: {', '.join(codes)})" if codes else ""
    if answer.status in (404, 410):
        return ExportJobGone(
            f"Bulk Data {what}: the server no longer knows the job ({answer.status}){issues}"
        )
    return ExportJobFailed(f"Bulk Data {what}: the export job failed ({answer.status}){issues}")


def _transient(answer: HttpAnswer) -> bool:
    """A 5xx that says nothing, or says something transient; 429 always."""
    if answer.status == 429:
        return True
    if answer.status < 500:
        return False
    body = answer.json_object()
    if body is None or body.get("resourceType") != "OperationOutcome":
        return True
    issues = body.get("issue")
    if any(
        isinstance(i, dict) and i.get("severity") == "fatal"
        for i in (issues if isinstance(issues, list) else [])
    ):
        return False
    codes = set(answer.issue_codes())
    return bool(codes) and codes <= TRANSIENT_CODES


def wait_for_complete(
    client: FhirHttpClient,
    url: str,
    policy: PollPolicy,
    *,
    stop: threading.Event | None = None,
    what: str = "status",
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], bool] | None = None,
) -> Complete | Pending:
    """Poll ``url`` until it answers 200 with a JSON object, or this run's patience ends.

    Args:
        client: The source's client (retries transport errors; refreshes tokens).
        url: The status URL (or a manifest page URL).
        policy: Intervals and limits.
        stop: Set by a stop signal; waiting ends at once (the job stays checkpointed).
        what: ``status`` or ``manifest page``, for messages.
        clock: Monotonic seconds (tests).
        now: The current UTC time, for ``Retry-After`` dates without a ``Date`` header.
        sleep: Waits that many seconds and returns True if stopped meanwhile (default:
            ``stop.wait``; tests pass a fake clock's).

    Raises:
        ExportJobFailed: The server reports the job failed.
        ExportJobGone: The server does not know the job (expired or deleted).
        RetriesExhausted: ``max_errors`` transient failures in a row.
        ExtractError: What the client raises (auth, transport errors past their retries).
    """
    stop = stop or threading.Event()
    sleep = sleep or stop.wait
    started = clock()
    polls = errors = 0
    progress: str | None = None
    problem = ""
    while True:
        answer = client.send("GET", url, answer_statuses=POLL_ANSWERS)
        polls += 1
        server_wait = _retry_after(answer, now())
        if answer.status == 200:
            body = answer.json_object()
            if body is not None:
                return Complete(body, polls)
            errors += 1
            problem = f"{answer.status} with a body that is not a JSON object"
            wait = policy.min_interval
        elif answer.status == 202:
            errors = 0
            progress = safe_progress(answer.headers.get("X-Progress")) or progress
            wait = server_wait if server_wait is not None else policy.default_interval
            logger.info("Bulk Data %s: in progress (%s)", what, progress or "no X-Progress")
        elif 200 <= answer.status < 300:
            raise MalformedResponseError(
                f"Bulk Data {what}: unexpected {answer.status} answer to a status poll"
            )
        elif _transient(answer):
            if answer.status != 429:
                errors += 1
            problem = str(answer.status)
            backoff = min(policy.max_interval, policy.min_interval * 2 ** max(errors - 1, 0))
            wait = max(server_wait or 0.0, backoff)
            logger.warning("Bulk Data %s: %s answered; polling again", what, answer.status)
        else:
            raise _failure(answer, what)
        if errors >= policy.max_errors:
            raise RetriesExhausted(
                f"Bulk Data {what}: {errors} failed polls in a row; last: {problem}; the job "
                "stays checkpointed for the next run"
            )
        wait = min(max(wait, policy.min_interval), policy.max_interval)
        waited = clock() - started
        if waited + wait > policy.max_wait:
            return Pending(progress, polls, waited, wait)
        if sleep(wait) or stop.is_set():
            return Pending(progress, polls, clock() - started, wait, paused=True)
