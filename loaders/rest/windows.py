"""Date windows: what each search asks for, and how a backfill range is cut into windows.

A window is the half-open range ``(start, end]`` of one date parameter (``_lastUpdated`` for
the default strategy, the type's clinical date otherwise). Windows of one type never overlap,
so resources are pulled once per backfill; the incremental sync's overlap is added on purpose,
by starting its window earlier than the cursor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


def fhir_instant(moment: datetime) -> str:
    """A FHIR instant in UTC with milliseconds: ``2026-11-22T04:25:00.000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_checkpoint(value: str | None) -> datetime | None:
    """Read back a cursor or checkpoint stored with :func:`fhir_instant`."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """The range ``(start, end]``; ``start`` None means from the beginning of time.

    ``open_end`` windows send no upper bound: clinical dates can lie in the future (a planned
    encounter), so an incremental clinical-date search must not cut at "now".
    """

    start: datetime | None
    end: datetime
    open_end: bool = False

    def params(self, parameter: str) -> dict[str, list[str]]:
        """Search parameters selecting the window on ``parameter`` (``gt`` start, ``le`` end)."""
        values = [] if self.open_end else [f"le{fhir_instant(self.end)}"]
        if self.start is not None:
            values.insert(0, f"gt{fhir_instant(self.start)}")
        return {parameter: values} if values else {}

    def contains(self, moment: datetime | None) -> bool:
        """Whether ``moment`` falls in the window."""
        if moment is None:
            return False
        return (self.start is None or moment > self.start) and moment <= self.end

    def split(self) -> tuple[Window, Window]:
        """Two halves of a window with a start."""
        assert self.start is not None
        middle = self.start + (self.end - self.start) / 2
        return Window(self.start, middle), Window(middle, self.end)

    def describe(self) -> str:
        """``2024-01-01T00:00:00.000Z..2024-02-01T00:00:00.000Z`` (no identifiers)."""
        start = fhir_instant(self.start) if self.start else "beginning"
        return f"{start}..{fhir_instant(self.end)}"


def incremental_window(cursor: datetime | None, overlap: timedelta, now: datetime) -> Window:
    """The window an incremental sync pulls: from ``cursor - overlap`` to the server's now.

    The overlap re-pulls recent changes on purpose: a resource committed by the server with a
    ``lastUpdated`` a little before the previous run's end, or skipped by a page shift, is
    picked up again; the merge makes the repeat cost nothing.
    """
    return Window(None if cursor is None else cursor - overlap, now)


def plan_windows(
    since: datetime,
    until: datetime,
    count: Callable[[Window], int | None],
    *,
    max_resources: int,
    min_span: timedelta,
    fallback_span: timedelta,
) -> list[Window]:
    """Cut ``(since, until]`` into windows of at most ``max_resources`` each, in time order.

    Uses the server's counts (``_summary=count``): a window holding too many resources is
    halved until it fits or reaches ``min_span`` (a burst of changes inside one second cannot
    be cut further, and is paged as one window). Empty windows are dropped. When the server
    gives no count, fixed windows of ``fallback_span`` are used instead.
    """
    first = Window(since, until)
    total = count(first)
    if total is None:
        windows, start = [], since
        while start < until:
            end = min(start + fallback_span, until)
            windows.append(Window(start, end))
            start = end
        return windows
    planned: list[Window] = []
    pending: list[tuple[Window, int]] = [(first, total)]
    while pending:
        window, size = pending.pop(0)
        if size == 0:
            continue
        assert window.start is not None
        if size <= max_resources or window.end - window.start <= min_span:
            planned.append(window)
            continue
        halves = []
        for half in window.split():
            half_count = count(half)
            halves.append((half, size if half_count is None else half_count))
        pending[:0] = halves
    return planned
