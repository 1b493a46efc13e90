"""Token bucket pacing and rate budgets: the request rate never exceeds the budget."""

from __future__ import annotations

import threading
import time

import pytest

from loaders.exceptions import ConfigError
from loaders.http.rate_limit import RateBudget, TokenBucket


class FakeClock:
    """A monotonic clock that only moves when something sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 50.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _assert_never_faster_than(times: list[float], rate: float, capacity: float) -> None:
    """In every window [t_i, t_j], at most capacity + rate * (t_j - t_i) grants."""
    ordered = sorted(times)
    for i in range(len(ordered)):
        for j in range(i, len(ordered)):
            granted = j - i + 1
            assert granted <= capacity + rate * (ordered[j] - ordered[i]) + 1e-9, (i, j)


def test_fake_clock_pacing_never_exceeds_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, capacity=1.0, clock=clock, sleep=clock.sleep)
    grants = []
    for _ in range(60):
        bucket.acquire()
        grants.append(clock.now)
    _assert_never_faster_than(grants, rate=5.0, capacity=1.0)
    # ... and is not needlessly slower: smooth pacing at 1/rate apart.
    assert grants[-1] - grants[0] == pytest.approx(59 / 5.0)
    assert clock.sleeps == pytest.approx([0.2] * 59)


def test_acquire_returns_the_seconds_waited_and_zero_when_a_token_is_there() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, capacity=1.0, clock=clock, sleep=clock.sleep)
    assert bucket.acquire() == 0.0
    assert bucket.acquire() == pytest.approx(0.5)
    clock.now += 10.0  # idle: the bucket refills, but never beyond its capacity
    assert bucket.acquire() == 0.0
    assert bucket.acquire() == pytest.approx(0.5)


def test_capacity_allows_a_burst_then_paces() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4.0, capacity=3.0, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.25, 0.25])


def test_concurrent_reservations_queue_instead_of_colliding() -> None:
    # Sleeping is outside the lock: each caller reserves the next slot before it sleeps.
    clock = FakeClock()
    recorded: list[float] = []
    lock = threading.Lock()

    def record_sleep(seconds: float) -> None:
        with lock:
            recorded.append(seconds)

    bucket = TokenBucket(10.0, capacity=1.0, clock=clock, sleep=record_sleep)
    threads = [threading.Thread(target=bucket.acquire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Nobody slept yet in fake time, so the 8 callers hold slots 0, 0.1, ..., 0.7 s ahead.
    assert sorted(recorded) == pytest.approx([0.1 * k for k in range(1, 8)])


def test_real_time_rate_from_several_threads_stays_under_budget() -> None:
    rate, per_thread, workers = 40.0, 8, 4
    bucket = TokenBucket(rate, capacity=1.0)
    grants: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(per_thread):
            bucket.acquire()
            now = time.monotonic()
            with lock:
                grants.append(now)

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = time.monotonic() - start
    grants.sort()
    # The k-th grant (k from 0) cannot happen before start + k / rate (sleeps never end early).
    for k, granted_at in enumerate(grants):
        assert granted_at - start >= k / rate - 0.005, k
    assert len(grants) == per_thread * workers
    assert (len(grants) - 1) / rate - 0.01 <= total < 2.0


def test_rate_budget_applies_headroom() -> None:
    budget = RateBudget(published_limit=1000, period_seconds=60.0, headroom=0.6)
    assert budget.requests_per_second == pytest.approx(10.0)
    assert RateBudget(published_limit=120).requests_per_second == pytest.approx(1.2)


def test_rate_budget_bucket_paces_at_the_budget() -> None:
    clock = FakeClock()
    bucket = RateBudget(published_limit=300, headroom=0.5).bucket(clock=clock, sleep=clock.sleep)
    grants = []
    for _ in range(20):
        bucket.acquire()
        grants.append(clock.now)
    _assert_never_faster_than(grants, rate=2.5, capacity=1.0)
    assert bucket.rate_per_second == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"published_limit": 0}, "published_limit"),
        ({"published_limit": -5}, "published_limit"),
        ({"published_limit": 100, "headroom": 0.0}, "headroom"),
        ({"published_limit": 100, "headroom": 1.5}, "headroom"),
        ({"published_limit": 100, "period_seconds": 0.0}, "period_seconds"),
    ],
)
def test_rate_budget_validation_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RateBudget(**kwargs)  # type: ignore[arg-type]


def test_headroom_of_one_is_allowed() -> None:
    assert RateBudget(published_limit=60, headroom=1.0).requests_per_second == 1.0


def test_bucket_validation() -> None:
    with pytest.raises(ConfigError, match="rate_per_second"):
        TokenBucket(0.0)
    with pytest.raises(ConfigError, match="capacity"):
        TokenBucket(1.0, capacity=0.5)
    with pytest.raises(ConfigError, match="positive"):
        TokenBucket(1.0).acquire(0)
