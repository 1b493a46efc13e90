"""Retry policy: full-jitter backoff, Retry-After parsing and the per-call retry budget."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from loaders.exceptions import ConfigError, RetriesExhausted
from loaders.http.retry import RetryPolicy, RetrySchedule, parse_http_date, parse_retry_after

NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


class _MaxRng(random.Random):
    """Always draws the top of the range, to expose the backoff cap."""

    def uniform(self, a: float, b: float) -> float:
        return b


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_cap_doubles_from_base_and_stops_at_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=60.0)
    caps = [policy.backoff_delay(attempt, _MaxRng()) for attempt in range(1, 10)]
    assert caps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_backoff_is_full_jitter_between_zero_and_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1234)
    draws = [policy.backoff_delay(4, rng) for _ in range(2000)]
    assert all(0.0 <= draw <= 8.0 for draw in draws)
    # Full jitter spreads over the whole range, not just near the cap ("equal jitter").
    assert min(draws) < 0.5
    assert max(draws) > 7.5
    assert 3.5 < sum(draws) / len(draws) < 4.5


def test_retries_status_includes_500_only_when_asked() -> None:
    assert RetryPolicy().retries_status(500)
    assert not RetryPolicy(retry_500=False).retries_status(500)
    for status in (429, 502, 503, 504):
        assert RetryPolicy(retry_500=False).retries_status(status)
    for status in (400, 401, 403, 404, 410, 422, 501):
        assert not RetryPolicy().retries_status(status)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_attempts", 0), ("base_delay", -1.0), ("max_elapsed_seconds", -5.0)],
)
def test_policy_validation_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        RetryPolicy(**{field: value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Mon, 99 Foo 2025 99:00:00 GMT", None),
    ],
)
def test_parse_retry_after_delta_seconds_and_garbage(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_http_date_future_and_past() -> None:
    future = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    past = format_datetime(NOW - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(future, NOW) == pytest.approx(90.0)
    assert parse_retry_after(past, NOW) == 0.0
    # A naive "now" is read as UTC.
    assert parse_retry_after(future, NOW.replace(tzinfo=None)) == pytest.approx(90.0)


def test_parse_http_date() -> None:
    assert parse_http_date("Tue, 04 Mar 2025 12:00:00 GMT") == NOW
    assert parse_http_date("yesterday") is None
    assert parse_http_date(None) is None


def test_schedule_waits_at_least_retry_after_and_at_least_the_backoff() -> None:
    schedule = RetrySchedule(RetryPolicy(), label="Patient", clock=_Clock(), rng=_MaxRng())
    schedule.start_attempt()
    assert schedule.next_delay("503", retry_after=12.0) == 12.0
    assert schedule.next_delay("503", retry_after=0.1) == 0.5  # the backoff cap is larger
    assert schedule.next_delay("503") == 0.5


def test_schedule_stops_after_max_attempts() -> None:
    schedule = RetrySchedule(
        RetryPolicy(max_attempts=3), label="Patient", clock=_Clock(), rng=random.Random(0)
    )
    for _ in range(2):
        schedule.start_attempt()
        assert schedule.next_delay("503 Service Unavailable") >= 0.0
    schedule.start_attempt()
    with pytest.raises(RetriesExhausted, match=r"^Patient: gave up after 3 attempts over .*503"):
        schedule.next_delay("503 Service Unavailable")


def test_schedule_stops_when_the_wait_would_pass_the_elapsed_budget() -> None:
    clock = _Clock()
    policy = RetryPolicy(max_elapsed_seconds=30.0)
    schedule = RetrySchedule(policy, label="Observation", clock=clock, rng=_MaxRng())
    schedule.start_attempt()
    clock.now += 25.0
    assert schedule.next_delay("ReadTimeout", retry_after=5.0) == 5.0
    clock.now += 5.0
    schedule.start_attempt()
    with pytest.raises(RetriesExhausted, match=r"30 s budget.*last: ReadTimeout"):
        schedule.next_delay("ReadTimeout")


def test_schedule_refuses_a_retry_after_longer_than_the_cap() -> None:
    policy = RetryPolicy(max_retry_after_seconds=900.0)
    schedule = RetrySchedule(policy, label="Encounter", clock=_Clock(), rng=random.Random(0))
    schedule.start_attempt()
    assert schedule.next_delay("429", retry_after=900.0) == 900.0
    with pytest.raises(RetriesExhausted, match=r"asked to wait 3600 s .*more than the 900 s"):
        schedule.next_delay("429", retry_after=3600.0)


def test_a_retry_after_within_the_cap_is_obeyed_past_the_elapsed_budget() -> None:
    clock = _Clock()
    policy = RetryPolicy(max_elapsed_seconds=600.0, max_retry_after_seconds=900.0)
    schedule = RetrySchedule(policy, label="Encounter", clock=clock, rng=_MaxRng())
    schedule.start_attempt()
    assert schedule.next_delay("429", retry_after=800.0) == 800.0
    clock.now += 800.0
    schedule.start_attempt()
    # The next retry that the server did not ask for falls under the elapsed budget again.
    with pytest.raises(RetriesExhausted, match="600 s budget"):
        schedule.next_delay("503")
