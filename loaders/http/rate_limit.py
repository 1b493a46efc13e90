"""Client-side pacing, so fhir-elt stays under an EHR's published request limit.

:class:`TokenBucket` hands out request permits at a fixed rate. A caller that finds the bucket
empty *reserves* its permit (the balance goes negative) and sleeps outside the lock until the
permit is due, so concurrent workers queue in arrival order and the k-th permit is never
granted before ``start + (k - capacity) / rate``. With ``capacity=1`` that is smooth pacing:
in any window of T seconds at most ``1 + rate * T`` requests start.

:class:`RateBudget` turns a vendor's published limit ("1,000 requests per minute") into a
rate, keeping headroom for the EHR's other clients and for retries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from loaders.exceptions import ConfigError


class TokenBucket:
    """A thread-safe token bucket.

    Args:
        rate_per_second: Tokens added per second.
        capacity: The most tokens the bucket holds (the largest burst). It starts full.
        clock: Monotonic clock in seconds (injected by tests).
        sleep: Sleep function (injected by tests).
    """

    def __init__(
        self,
        rate_per_second: float,
        capacity: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate_per_second > 0:
            raise ConfigError("TokenBucket.rate_per_second must be greater than 0")
        if not capacity >= 1:
            raise ConfigError("TokenBucket.capacity must be at least 1")
        self._rate = float(rate_per_second)
        self._capacity = float(capacity)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self._capacity
        self._updated = clock()

    @property
    def rate_per_second(self) -> float:
        """Tokens added per second."""
        return self._rate

    def acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, waiting until they are due.

        Returns:
            The seconds this call waited (0 when the tokens were there).
        """
        if not tokens > 0:
            raise ConfigError("TokenBucket.acquire needs a positive number of tokens")
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            self._tokens -= tokens
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True, slots=True)
class RateBudget:
    """A vendor's published request limit and the share of it fhir-elt may use.

    Attributes:
        published_limit: Requests the vendor allows per period.
        period_seconds: The period of that limit.
        headroom: The fraction of the limit to use (0 < headroom <= 1); the rest is left for
            retries, clock drift between the two sides and the EHR's other clients.
    """

    published_limit: int
    period_seconds: float = 60.0
    headroom: float = 0.6

    def __post_init__(self) -> None:
        if not self.published_limit > 0:
            raise ConfigError("RateBudget.published_limit must be greater than 0")
        if not self.period_seconds > 0:
            raise ConfigError("RateBudget.period_seconds must be greater than 0")
        if not 0 < self.headroom <= 1:
            raise ConfigError("RateBudget.headroom must be greater than 0 and at most 1")

    @property
    def requests_per_second(self) -> float:
        """The pace fhir-elt keeps: ``published_limit * headroom / period_seconds``."""
        return self.published_limit * self.headroom / self.period_seconds

    def bucket(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> TokenBucket:
        """A smooth-pacing bucket (capacity 1) at this budget's rate."""
        return TokenBucket(self.requests_per_second, 1.0, clock=clock, sleep=sleep)
