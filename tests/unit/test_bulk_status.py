"""Polling a Bulk Data status URL: Retry-After (seconds and HTTP-date) capped, X-Progress,
429 and transient 5xx waited out, failed and unknown jobs, and leaving a slow job for later."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from loaders.bulk.status import (
    Complete,
    ExportJobFailed,
    ExportJobGone,
    Pending,
    PollPolicy,
    safe_progress,
    wait_for_complete,
)
from loaders.exceptions import RetriesExhausted
from loaders.http import FhirHttpClient, RetryPolicy

BASE = "https://ehr.example/fhir"
STATUS = f"{BASE}/_bulk/status/job1"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MANIFEST = {"transactionTime": "2026-06-01T11:00:00Z", "requiresAccessToken": True, "output": []}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def outcome(code: str, severity: str = "error") -> dict[str, object]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": "Patient Jane Doe"}],
    }


def poll(*answers: httpx.Response, policy: PollPolicy | None = None, stop=None):
    script = list(answers)
    clock = Clock()
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return script.pop(0) if len(script) > 1 else script[0]

    client = FhirHttpClient(
        BASE,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=2, base_delay=0.0),
        sleep=lambda s: None,
        clock=clock,
        now=lambda: NOW,
    )
    result = wait_for_complete(
        client,
        STATUS,
        policy or PollPolicy(min_interval=1, default_interval=5, max_interval=60, max_wait=600),
        stop=stop,
        clock=clock,
        now=lambda: NOW,
        sleep=clock.sleep,
    )
    return result, clock, requests


def test_202s_are_polled_again_after_retry_after_then_the_manifest_is_returned() -> None:
    result, clock, requests = poll(
        httpx.Response(202, headers={"Retry-After": "3", "X-Progress": "40% complete"}),
        httpx.Response(202),
        httpx.Response(200, json=MANIFEST),
    )
    assert isinstance(result, Complete)
    assert result.body == MANIFEST and result.polls == 3
    assert clock.waits == [3, 5], "Retry-After, then the default interval"
    assert all(
        r.method == "GET" and r.headers["Accept"] == "application/fhir+json" for r in requests
    )


def test_a_retry_after_of_hours_is_capped_and_an_http_date_is_read() -> None:
    in_two_hours = format_datetime(NOW + timedelta(hours=2), usegmt=True)
    in_ten_seconds = format_datetime(NOW + timedelta(seconds=10), usegmt=True)
    result, clock, _ = poll(
        httpx.Response(202, headers={"Retry-After": "7200"}),
        httpx.Response(202, headers={"Retry-After": in_two_hours}),
        httpx.Response(
            202, headers={"Retry-After": in_ten_seconds, "Date": format_datetime(NOW, usegmt=True)}
        ),
        httpx.Response(200, json=MANIFEST),
    )
    assert isinstance(result, Complete)
    assert clock.waits == [60, 60, 10]


def test_429_is_waited_out_and_never_ends_the_poll() -> None:
    result, clock, _ = poll(
        *[httpx.Response(429, headers={"Retry-After": "2"}, json=outcome("throttled"))] * 12,
        httpx.Response(200, json=MANIFEST),
        policy=PollPolicy(min_interval=0, max_interval=60, max_wait=600, max_errors=3),
    )
    assert isinstance(result, Complete) and result.polls == 13
    assert clock.waits == [2] * 12


def test_transient_5xx_are_retried_until_max_errors_in_a_row() -> None:
    result, _, _ = poll(
        httpx.Response(503),
        httpx.Response(500, json=outcome("transient")),
        httpx.Response(502, text="<html>gateway</html>"),
        httpx.Response(200, json=MANIFEST),
        policy=PollPolicy(min_interval=0.1, max_errors=4),
    )
    assert isinstance(result, Complete)

    with pytest.raises(RetriesExhausted, match="3 failed polls in a row; last: 503") as caught:
        poll(httpx.Response(503), policy=PollPolicy(min_interval=0.1, max_errors=3))
    assert "Jane" not in str(caught.value)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, json=outcome("exception", "fatal")),
        httpx.Response(500, json=outcome("processing")),
        httpx.Response(400, json=outcome("invalid")),
    ],
)
def test_a_failed_job_raises_with_its_issue_codes_not_its_diagnostics(answer) -> None:
    with pytest.raises(ExportJobFailed, match="export job failed") as caught:
        poll(answer)
    assert "Jane" not in str(caught.value)
    assert str(answer.status_code) in str(caught.value)


def test_an_unknown_job_is_gone() -> None:
    with pytest.raises(ExportJobGone, match="no longer knows the job"):
        poll(httpx.Response(404, json=outcome("not-found")))


def test_a_slow_job_is_left_pending_when_this_runs_patience_ends() -> None:
    result, clock, _ = poll(
        httpx.Response(202, headers={"Retry-After": "30", "X-Progress": "10% done"}),
        policy=PollPolicy(min_interval=1, max_interval=60, max_wait=100),
    )
    assert isinstance(result, Pending)
    assert (result.progress, result.polls, result.paused) == ("10% done", 4, False)
    assert clock.waits == [30, 30, 30], "no wait that would pass max_wait is started"
    assert result.next_poll_seconds == 30


def test_a_stop_signal_ends_the_wait_at_once() -> None:
    stop = threading.Event()
    stop.set()
    result, _, _ = poll(httpx.Response(202), stop=stop)
    assert isinstance(result, Pending) and result.paused and result.polls == 1


def test_progress_text_is_made_safe_for_logs() -> None:
    assert safe_progress("  50% complete\r\n") == "50% complete"
    assert safe_progress("x" * 500) == "x" * 80
    assert safe_progress("caf\u00e9") == "caf?"
    assert safe_progress(None) is None
