"""Switchable fault scenarios of the test server.

Every field may be changed at any time, from the test thread, while the server runs; the
handler reads them on each request. Randomness comes from ``random.Random(seed)`` drawn under
a lock, so a single-threaded client sees the same faults on every run with the same seed.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

SERVER_ERROR_STATUSES: tuple[int, ...] = (500, 502, 503, 504)
# Scenario fields that count down as the server applies them ("the next n ...").
BULK_ONE_SHOT_FIELDS: tuple[str, ...] = (
    "bulk_429_polls",
    "bulk_truncate_downloads",
    "bulk_short_downloads",
)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What the server does to one request before (or instead of) answering it.

    Attributes:
        status: Error status to answer with instead of the real response (429 or 5xx).
        retry_after: Seconds to advertise in ``Retry-After`` (``None``: no header).
        reset: Send headers and half the body, then drop the connection.
        slow_seconds: Seconds to wait before responding.
        reason: Short label for the request log (``"rate_limit"``, ``"burst_5xx"``...).
    """

    status: int | None = None
    retry_after: float | None = None
    reset: bool = False
    slow_seconds: float = 0.0
    reason: str | None = None


@dataclass
class Scenario:
    """Fault and capability switches of a :class:`FhirTestServer`.

    Attributes:
        seed: Seed of the random faults (changing it restarts the random stream).
        rate_limit: ``(max_requests, per_seconds)`` sliding window over data requests;
            excess requests get 429 with ``Retry-After``.
        retry_after_http_date: Send ``Retry-After`` as an HTTP-date instead of seconds.
        retry_after_seconds: ``Retry-After`` of random/burst 429s and of 503s.
        fraction_429: Probability that a data request gets 429.
        fraction_5xx: Probability that a data request gets 500/502/503/504.
        fraction_reset: Probability that a response is cut in half and the socket reset.
        fraction_slow: Probability that a response waits ``slow_seconds`` first.
        slow_seconds: Delay of slow responses.
        faults_on_metadata: Apply faults to ``/fhir/metadata`` and SMART configuration too.
        faults_on_token: Apply the data-request faults (incl. rate limit) to the token endpoint.
        fraction_token_5xx: Probability that a token request gets 500/503.
        update_while_paging: Resources of the current result set, at offsets the client has
            already passed, updated after each non-final search page.
        rename_field: ``(type, from_element, to_element, page_number)``: rename a top-level
            element of every resource of that type on that page of that type's searches.
        malformed_page: ``(type, page_number)``: that page is truncated JSON with status 200.
        repeat_page: ``(type, page_number)``: that page (2 or later) of that type's searches
            carries the previous page's entries again, with the real page's ``next`` link, as a
            replaying cache or proxy would: the previous page arrives twice and that page's
            own entries are never sent by paging.
        outcome_entry_every_n_pages: Add an information OperationOutcome entry
            (``search.mode = "outcome"``) to every n-th page.
        include_entries: Add the referenced Patients as ``search.mode = "include"`` entries.
        token_lifetime_seconds: ``expires_in`` of issued access tokens.
        supports_sort: Whether ``_sort`` is supported (and listed in the CapabilityStatement).
        ignore_unsupported_sort: Silently ignore ``_sort`` instead of answering 400.
        last_updated_unsupported: Types for which ``_lastUpdated`` is rejected with 400.
        max_page_size: Upper bound of ``_count``.
        default_page_size: Page size when ``_count`` is absent (or ignored).
        ignore_count: Always use ``default_page_size``.
        page_size_changes: ``{page_number: size}``: from that page on, pages have that size
            whatever ``_count`` says (the latest key <= page applies).
        bulk_polls_before_ready: Status polls of a bulk job answered 202 before it completes
            (read at kick-off).
        bulk_job_seconds: A bulk job also needs this many server-clock seconds after kick-off
            (read at kick-off).
        bulk_retry_after_seconds: ``Retry-After`` of in-progress (202) and 429 status polls.
        bulk_retry_after_http_date: Send that ``Retry-After`` as an HTTP-date.
        bulk_429_polls: The next n status (and manifest) polls get 429 (one-shot counter).
        bulk_resources_per_file: Lines per output/deleted file (read when files are built).
        bulk_manifest_page_size: Outputs per manifest page when the client sent
            ``allowPartialManifests=true`` (``None``: one manifest; read at kick-off).
        bulk_truncate_downloads: The next n file downloads send the full ``Content-Length``
            and half the body, then reset the connection (one-shot counter).
        bulk_short_downloads: The next n file downloads send half the lines, chunked, and
            end cleanly (one-shot counter).
        bulk_error_outcomes: OperationOutcome lines in the job's error file (read at kick-off).
        bulk_fail_job: The job fails: its status answers 500 with an OperationOutcome (read
            at kick-off).
        bulk_requires_access_token: The manifest's ``requiresAccessToken``; when true and
            auth is required, file downloads need a valid bearer token (read at kick-off).
    """

    seed: int = 0
    rate_limit: tuple[int, float] | None = None
    retry_after_http_date: bool = False
    retry_after_seconds: float = 1.0
    fraction_429: float = 0.0
    fraction_5xx: float = 0.0
    fraction_reset: float = 0.0
    fraction_slow: float = 0.0
    slow_seconds: float = 0.5
    faults_on_metadata: bool = False
    faults_on_token: bool = False
    fraction_token_5xx: float = 0.0
    update_while_paging: int = 0
    rename_field: tuple[str, str, str, int] | None = None
    malformed_page: tuple[str, int] | None = None
    repeat_page: tuple[str, int] | None = None
    outcome_entry_every_n_pages: int | None = None
    include_entries: bool = False
    token_lifetime_seconds: int = 300
    supports_sort: bool = True
    ignore_unsupported_sort: bool = False
    last_updated_unsupported: set[str] = field(default_factory=set)
    max_page_size: int = 1000
    default_page_size: int = 50
    ignore_count: bool = False
    page_size_changes: dict[int, int] | None = None
    bulk_polls_before_ready: int = 0
    bulk_job_seconds: float = 0.0
    bulk_retry_after_seconds: float = 1.0
    bulk_retry_after_http_date: bool = False
    bulk_429_polls: int = 0
    bulk_resources_per_file: int = 1000
    bulk_manifest_page_size: int | None = None
    bulk_truncate_downloads: int = 0
    bulk_short_downloads: int = 0
    bulk_error_outcomes: int = 0
    bulk_fail_job: bool = False
    bulk_requires_access_token: bool = True

    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _rng: random.Random | None = field(default=None, init=False, repr=False, compare=False)
    _rng_seed: int | None = field(default=None, init=False, repr=False, compare=False)
    _window: deque[float] = field(default_factory=deque, init=False, repr=False, compare=False)
    _forced_status: deque[int] = field(default_factory=deque, init=False, repr=False, compare=False)
    _forced_resets: int = field(default=0, init=False, repr=False, compare=False)
    _forced_slow: deque[float] = field(default_factory=deque, init=False, repr=False, compare=False)

    # -- one-shot faults -------------------------------------------------------------------

    def burst_5xx(self, n: int, status: int = 503) -> None:
        """Make the next ``n`` data requests fail with ``status``."""
        with self._lock:
            self._forced_status.extend([status] * n)

    def burst_429(self, n: int) -> None:
        """Make the next ``n`` data requests fail with 429."""
        self.burst_5xx(n, status=429)

    def reset_next(self, n: int) -> None:
        """Reset the connection mid-body on the next ``n`` data requests."""
        with self._lock:
            self._forced_resets += n

    def slow_next(self, n: int, seconds: float | None = None) -> None:
        """Delay the next ``n`` data requests by ``seconds`` (default ``slow_seconds``)."""
        with self._lock:
            self._forced_slow.extend([self.slow_seconds if seconds is None else seconds] * n)

    def clear_faults(self) -> None:
        """Drop pending one-shot faults (the ``bulk_*`` counters too) and the rate-limit
        window."""
        with self._lock:
            self._forced_status.clear()
            self._forced_slow.clear()
            self._forced_resets = 0
            self._window.clear()
            for name in BULK_ONE_SHOT_FIELDS:
                setattr(self, name, 0)

    def take(self, name: str) -> bool:
        """Consume one unit of the one-shot counter field ``name``; ``False`` when it is 0."""
        if name not in BULK_ONE_SHOT_FIELDS:
            raise ValueError(f"{name!r} is not a one-shot counter")
        with self._lock:
            left = int(getattr(self, name))
            if left <= 0:
                return False
            setattr(self, name, left - 1)
            return True

    # -- decisions (called by the server) --------------------------------------------------

    def random(self) -> float:
        """Next number of the seeded random stream (thread-safe)."""
        with self._lock:
            return self._random()

    def sample(self, population: int, k: int) -> list[int]:
        """Seeded sample of ``min(k, population)`` distinct indexes of ``range(population)``."""
        with self._lock:
            self._random()
            assert self._rng is not None
            return self._rng.sample(range(population), min(k, population))

    def _random(self) -> float:
        if self._rng is None or self._rng_seed != self.seed:
            self._rng, self._rng_seed = random.Random(self.seed), self.seed
        return self._rng.random()

    def plan(self, *, token_request: bool = False) -> FaultPlan:
        """Decide the faults of one request (consumes one-shot faults and random draws)."""
        with self._lock:
            if token_request and not self.faults_on_token:
                if self.fraction_token_5xx > 0 and self._random() < self.fraction_token_5xx:
                    status = self._choose((500, 503))
                    return FaultPlan(status, self._retry_after_for(status), reason="token_5xx")
                return FaultPlan()
            status, retry_after, reason = self._plan_status(token_request)
            reset = False
            if self._forced_resets > 0:
                self._forced_resets -= 1
                reset = True
            elif self.fraction_reset > 0 and self._random() < self.fraction_reset:
                reset = True
            slow = 0.0
            if self._forced_slow:
                slow = self._forced_slow.popleft()
            elif self.fraction_slow > 0 and self._random() < self.fraction_slow:
                slow = self.slow_seconds
            return FaultPlan(status, retry_after, reset, slow, reason)

    def _plan_status(self, token_request: bool) -> tuple[int | None, float | None, str | None]:
        limited = self._rate_limited()
        if limited is not None:
            return 429, limited, "rate_limit"
        if self._forced_status:
            status = self._forced_status.popleft()
            return status, self._retry_after_for(status), "burst"
        if self.fraction_429 > 0 and self._random() < self.fraction_429:
            return 429, self.retry_after_seconds, "random_429"
        if self.fraction_5xx > 0 and self._random() < self.fraction_5xx:
            status = self._choose(SERVER_ERROR_STATUSES)
            return status, self._retry_after_for(status), "random_5xx"
        if (
            token_request
            and self.fraction_token_5xx > 0
            and self._random() < self.fraction_token_5xx
        ):
            status = self._choose((500, 503))
            return status, self._retry_after_for(status), "token_5xx"
        return None, None, None

    def _choose(self, statuses: tuple[int, ...]) -> int:
        self._random()
        assert self._rng is not None
        return self._rng.choice(statuses)

    def _retry_after_for(self, status: int) -> float | None:
        return self.retry_after_seconds if status in (429, 503) else None

    def _rate_limited(self) -> float | None:
        """Seconds until a slot frees up when the window is full, else record the request."""
        if self.rate_limit is None:
            return None
        limit, per = self.rate_limit
        now = time.monotonic()
        while self._window and self._window[0] <= now - per:
            self._window.popleft()
        if len(self._window) >= limit:
            return max(1.0, math.ceil(self._window[0] + per - now))
        self._window.append(now)
        return None
