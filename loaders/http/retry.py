"""When to retry a FHIR request, and how long to wait first.

Waits are exponential backoff with *full* jitter (a uniform draw between zero and the capped
exponential), so workers that failed together do not retry together. A server's
``Retry-After`` is a floor under that draw, never a ceiling: the wait is
``max(jittered backoff, Retry-After)``. A ``Retry-After`` longer than
``max_retry_after_seconds`` ends the retries at once, with a message that says so, rather than
parking a worker for an hour. A ``Retry-After`` within that cap is obeyed even when the wait
runs past ``max_elapsed_seconds`` (the server said when it will serve us again; a vendor's
15-minute rate window should not fail a backfill); ``max_attempts`` still bounds such waits,
and the elapsed budget stops the next retry that is not server-directed.

Status 500 is retried by default (``retry_500=True``): cloud EHRs answer 500 to load they
should have answered 503 to, and the retry budget bounds the cost when the 500 is a real bug.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from loaders.exceptions import ConfigError, RetriesExhausted

DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times, and for how long, transient failures are retried.

    Attributes:
        max_attempts: Attempts in all, the first included.
        max_elapsed_seconds: No retry starts if its wait would end after this much time since
            the first attempt (unless the wait is a ``Retry-After`` within its cap).
        base_delay: Backoff cap of the first retry; it doubles with each further retry.
        max_delay: Upper bound of the backoff cap.
        retry_statuses: HTTP statuses retried.
        retry_500: Whether 500 is retried too (default yes: EHRs throw 500 under load).
        max_retry_after_seconds: The longest ``Retry-After`` obeyed; a longer one ends the
            retries with :class:`RetriesExhausted`.
    """

    max_attempts: int = 8
    max_elapsed_seconds: float = 600.0
    base_delay: float = 0.5
    max_delay: float = 60.0
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    retry_500: bool = True
    max_retry_after_seconds: float = 900.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("RetryPolicy.max_attempts must be at least 1")
        for name in ("max_elapsed_seconds", "base_delay", "max_delay", "max_retry_after_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"RetryPolicy.{name} must not be negative")

    def retries_status(self, status: int) -> bool:
        """Whether a response with ``status`` is retried."""
        return status in self.retry_statuses or (self.retry_500 and status == 500)

    def backoff_delay(self, attempt: int, rng: random.Random) -> float:
        """The jittered wait after failed attempt number ``attempt`` (1-based).

        Full jitter: ``uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))``.
        """
        cap = min(self.max_delay, self.base_delay * 2 ** max(attempt - 1, 0))
        return rng.uniform(0.0, cap)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value.

    Args:
        value: The header value: delta-seconds (``"120"``) or an HTTP-date
            (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now: The moment the date is measured from (aware; naive means UTC). The server's own
            ``Date`` header is the best choice: it cancels clock skew.

    Returns:
        Seconds (0 for a negative delay or a date in the past), or None when the header is
        absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    when = parse_http_date(text)
    if when is None:
        return None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date header value (``Date``, ``Retry-After``) as an aware datetime, or None."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class RetrySchedule:
    """The retry budget of one logical request (all its attempts).

    Call :meth:`start_attempt` before each attempt and :meth:`next_delay` after a transient
    failure: it returns the wait before the next attempt, or raises :class:`RetriesExhausted`
    when the attempts, the elapsed time or the server's ``Retry-After`` rule out another one.
    Sleeping is the caller's job, so it can log the decision first.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        label: str,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self._policy = policy
        self._label = label
        self._clock = clock
        self._rng = rng
        self._started = clock()
        self.attempts = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the schedule was created."""
        return self._clock() - self._started

    def start_attempt(self) -> int:
        """Count one more attempt and return its number (1-based)."""
        self.attempts += 1
        return self.attempts

    def next_delay(self, last: str, retry_after: float | None = None) -> float:
        """The wait before the next attempt.

        Args:
            last: What the failed attempt ended with (``"503"``, ``"ReadTimeout"``); it ends
                the message if the retries are over. Must not carry PHI.
            retry_after: The server's ``Retry-After`` in seconds, if it sent one.

        Raises:
            RetriesExhausted: No attempt is left, the wait would pass the elapsed budget, or
                the server asked for a longer wait than the policy obeys.
        """
        policy = self._policy
        elapsed = self.elapsed
        tried = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        if self.attempts >= policy.max_attempts:
            raise RetriesExhausted(
                f"{self._label}: gave up after {tried} over {elapsed:.1f} s; last: {last}"
            )
        if retry_after is not None and retry_after > policy.max_retry_after_seconds:
            raise RetriesExhausted(
                f"{self._label}: the server asked to wait {retry_after:.0f} s (Retry-After), "
                f"more than the {policy.max_retry_after_seconds:.0f} s allowed; gave up after "
                f"{tried} over {elapsed:.1f} s; last: {last}"
            )
        backoff = policy.backoff_delay(self.attempts, self._rng)
        server_directed = retry_after is not None and retry_after >= backoff
        delay = max(backoff, retry_after or 0.0)
        if elapsed + delay > policy.max_elapsed_seconds and not server_directed:
            raise RetriesExhausted(
                f"{self._label}: gave up after {tried} over {elapsed:.1f} s (waiting "
                f"{delay:.1f} s more would pass the {policy.max_elapsed_seconds:.0f} s budget); "
                f"last: {last}"
            )
        return delay
