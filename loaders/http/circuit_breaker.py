"""Stop extracting a resource type whose requests keep failing.

One counter of consecutive failed attempts per key (the resource type). A success resets it;
once it reaches the threshold the key is open and :meth:`CircuitBreaker.check` raises
:class:`CircuitOpenError` before any further request is sent. An open key stays open for the
rest of the run: there is no half-open probing, because a backfill that lost a resource type
should end with that type reported as failed and be re-run, not limp on and come back partial.
Other resource types are not affected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from loaders.exceptions import CircuitOpenError, ConfigError


@dataclass(slots=True)
class _KeyState:
    consecutive_failures: int = 0
    last_failure: str = ""
    open: bool = False


class CircuitBreaker:
    """Thread-safe per-resource-type circuit breaker.

    Args:
        threshold: Consecutive failed attempts after which a key opens.
    """

    def __init__(self, threshold: int = 5) -> None:
        if threshold < 1:
            raise ConfigError("CircuitBreaker.threshold must be at least 1")
        self.threshold = threshold
        self._lock = threading.Lock()
        self._states: dict[str, _KeyState] = {}

    def record_success(self, key: str) -> None:
        """A request for ``key`` succeeded: reset its count (an open key stays open)."""
        with self._lock:
            state = self._states.get(key)
            if state is not None and not state.open:
                state.consecutive_failures = 0

    def record_failure(self, key: str, cause: str = "error") -> None:
        """A request for ``key`` failed with ``cause`` (a status or error class, no PHI)."""
        with self._lock:
            state = self._states.setdefault(key, _KeyState())
            if state.open:
                return
            state.consecutive_failures += 1
            state.last_failure = cause
            if state.consecutive_failures >= self.threshold:
                state.open = True

    def is_open(self, key: str) -> bool:
        """Whether ``key`` has been stopped."""
        with self._lock:
            state = self._states.get(key)
            return state is not None and state.open

    def check(self, key: str) -> None:
        """Raise :class:`CircuitOpenError` if ``key`` has been stopped."""
        with self._lock:
            state = self._states.get(key)
            if state is None or not state.open:
                return
            count, last = state.consecutive_failures, state.last_failure
        raise CircuitOpenError(
            f"{key}: stopped after {count} consecutive failed requests; last: {last}"
        )
