"""Thread-safe counters and the request log of the test server."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

COUNTERS: tuple[str, ...] = (
    "requests",
    "data_requests",
    "sent_429",
    "sent_5xx",
    "resets",
    "slow_responses",
    "malformed_pages",
    "repeated_pages",
    "tokens_issued",
    "token_errors",
    "pages_served",
    "resources_served",
    "updates_while_paging",
    "client_disconnects",
    "internal_errors",
    "bulk_kickoffs",
    "bulk_polls",
    "bulk_manifests",
    "bulk_files_served",
    "bulk_resources_served",
    "bulk_truncated_downloads",
    "bulk_short_downloads",
    "bulk_deletes",
)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the server answered (or cut off).

    Attributes:
        method: HTTP method.
        path: URL path, percent-decoded (``/fhir/Patient``).
        query: Raw query string (``""`` when absent).
        status: Status line sent (200 for a reset response that started as 200).
        time: Server-clock time the request arrived.
        token_id: Id of the bearer token presented (``tok-000001``, ``static-0``), ``"unknown"``
            for an unrecognised token, ``None`` when no bearer token was sent.
        fault: Fault applied (``rate_limit``, ``burst``, ``random_429``, ``random_5xx``,
            ``reset``, ``slow``, ``malformed``...), ``None`` for a clean response.
        kind: ``data``, ``metadata``, ``token``, ``other``, or for Bulk Data requests
            ``bulk_kickoff``, ``bulk_status``, ``bulk_manifest``, ``bulk_file``, ``bulk_delete``.
    """

    method: str
    path: str
    query: str
    status: int
    time: datetime
    token_id: str | None
    fault: str | None = None
    kind: str = "data"


class ServerStats:
    """Counters the server bumps; read them from tests at any time.

    Every name in :data:`COUNTERS` reads as an int attribute (``stats.sent_429``), 0 until
    bumped; ``by_status`` maps status code to count.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()

    def incr(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        with self._lock:
            self._counts[name] += n

    def record_status(self, status: int) -> None:
        """Count one response with ``status`` (also bumps 429/5xx counters)."""
        with self._lock:
            self._by_status[status] += 1
            if status == 429:
                self._counts["sent_429"] += 1
            elif status >= 500:
                self._counts["sent_5xx"] += 1

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def __getattr__(self, name: str) -> int:
        if name not in COUNTERS:
            raise AttributeError(f"no counter {name!r}; known: {', '.join(COUNTERS)}")
        return self[name]

    @property
    def by_status(self) -> dict[int, int]:
        """Responses per status code (a copy)."""
        with self._lock:
            return dict(self._by_status)

    def snapshot(self) -> dict[str, int]:
        """All named counters (a copy)."""
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._counts.clear()
            self._by_status.clear()
