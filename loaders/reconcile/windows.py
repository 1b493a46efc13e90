"""Cut a ``_lastUpdated`` range into the windows a reconciliation compares, by bisection.

The whole range ``(since, until]`` is counted first, on both sides: the source
(``_summary=count``) and the warehouse (current, non-deleted rows). A window whose counts agree
is recorded as it is; one that differs is halved and each half counted again, until every
differing window is small enough to repair cheaply (``max_resources`` on either side) or too
narrow to cut. A single hole in ten million rows is thus pinned to a window of at most
``max_resources`` resources in about ``2 * log2(10_000_000 / max_resources)`` count requests,
and the windows recorded always partition the range.

Halves are cut at the warehouse's median ``last_updated`` in the window (so they hold similar
numbers of stored rows), else at the middle of the window's time span. Cut points are whole
milliseconds: FHIR servers compare ``_lastUpdated`` at the precision of the value searched,
so a finer cut would make the server and the warehouse disagree about which side a resource
stamped in the same millisecond is on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from loaders.rest.windows import Window

# Bisection depth limit: about 2^-60 of a century is far below a millisecond.
_MAX_DEPTH = 60


@dataclass(frozen=True, slots=True)
class WindowCount:
    """One window and both counts.

    Attributes:
        window: ``(start, end]`` on ``_lastUpdated``.
        source: The source's count, or None when it gave none.
        warehouse: Current, non-deleted warehouse rows in the window.
    """

    window: Window
    source: int | None
    warehouse: int

    @property
    def delta(self) -> int | None:
        """``source - warehouse``: positive = holes, negative = gone from the source."""
        return None if self.source is None else self.source - self.warehouse


def floor_ms(moment: datetime) -> datetime:
    """``moment`` truncated to whole milliseconds."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _cut(window: Window, median: datetime | None) -> datetime | None:
    """Where to halve ``window``: the median if it falls strictly inside, else the middle."""
    candidates = [] if median is None else [floor_ms(median)]
    if window.start is not None:
        candidates.append(floor_ms(window.start + (window.end - window.start) / 2))
    for cut in candidates:
        if (window.start is None or cut > window.start) and cut < window.end:
            return cut
    return None


def bisect_windows(
    top: Window,
    count_source: Callable[[Window], int | None],
    count_warehouse: Callable[[Window], int],
    median: Callable[[Window], datetime | None],
    *,
    max_resources: int,
) -> list[WindowCount]:
    """The windows of ``top`` to record, in time order, with both counts.

    Args:
        top: The whole range.
        count_source: The source's count of a window (None: the server gives no count).
        count_warehouse: The warehouse's count of a window.
        median: The warehouse's median ``last_updated`` in a window (None when empty).
        max_resources: A differing window holding at most this many resources on both sides
            is not cut further.
    """
    found: list[WindowCount] = []
    pending: list[tuple[WindowCount, int]] = [
        (WindowCount(top, count_source(top), count_warehouse(top)), 0)
    ]
    while pending:
        counted, depth = pending.pop(0)
        source, warehouse = counted.source, counted.warehouse
        small = max(source or 0, warehouse) <= max_resources
        if source is None or source == warehouse or small or depth >= _MAX_DEPTH:
            found.append(counted)
            continue
        cut = _cut(counted.window, median(counted.window))
        if cut is None:
            found.append(counted)
            continue
        halves = (Window(counted.window.start, cut), Window(cut, counted.window.end))
        pending[:0] = [
            (WindowCount(half, count_source(half), count_warehouse(half)), depth + 1)
            for half in halves
        ]
    return found
