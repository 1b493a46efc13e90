"""Bisection of a reconciliation range: windows partition it and pin differences down cheaply."""

from __future__ import annotations

import bisect
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from loaders.reconcile.windows import WindowCount, bisect_windows, floor_ms
from loaders.rest.windows import Window

START = datetime(2020, 1, 1, tzinfo=UTC)


def _stamps(count: int, step: timedelta) -> list[datetime]:
    return [START + step * (n + 1) for n in range(count)]


class Side:
    """One side's resources as sorted lastUpdated stamps; counts windows like Window.contains."""

    def __init__(self, stamps: list[datetime]) -> None:
        self.stamps = sorted(stamps)
        self.requests = 0

    def _inside(self, window: Window) -> list[datetime]:
        low = 0 if window.start is None else bisect.bisect_right(self.stamps, window.start)
        return self.stamps[low : bisect.bisect_right(self.stamps, window.end)]

    def count(self, window: Window) -> int:
        self.requests += 1
        return len(self._inside(window))

    def median(self, window: Window) -> datetime | None:
        inside = self._inside(window)
        return inside[len(inside) // 2] if inside else None


def _run(source: Side, warehouse: Side, top: Window, max_resources: int) -> list[WindowCount]:
    return bisect_windows(
        top, source.count, warehouse.count, warehouse.median, max_resources=max_resources
    )


def _assert_partition(found: list[WindowCount], top: Window) -> None:
    assert found[0].window.start == top.start
    assert found[-1].window.end == top.end
    for before, after in itertools.pairwise(found):
        assert before.window.end == after.window.start


def test_matching_sides_are_one_window_and_two_counts() -> None:
    stamps = _stamps(5000, timedelta(minutes=7))
    source, warehouse = Side(stamps), Side(stamps)
    top = Window(None, START + timedelta(days=365))

    found = _run(source, warehouse, top, max_resources=100)

    assert found == [WindowCount(top, 5000, 5000)]
    assert source.requests == 1


def test_holes_are_pinned_to_small_windows_that_partition_the_range() -> None:
    stamps = _stamps(20_000, timedelta(minutes=3))
    holes = {stamps[123], stamps[15_001], stamps[15_002]}
    source, warehouse = Side(stamps), Side([s for s in stamps if s not in holes])
    top = Window(START, START + timedelta(days=60))

    found = _run(source, warehouse, top, max_resources=500)

    _assert_partition(found, top)
    differing = [counted for counted in found if counted.delta]
    assert sum(counted.delta or 0 for counted in differing) == 3
    assert all(max(c.source or 0, c.warehouse) <= 500 for c in differing)
    for hole in holes:
        assert any(c.window.contains(hole) for c in differing)
    assert all(c.source == c.warehouse for c in found if not c.delta)
    # About two counts per halving: far fewer than one per resource or per day.
    assert source.requests <= 2 * 2 * 6 + 1


def test_deletions_show_as_negative_deltas() -> None:
    stamps = _stamps(300, timedelta(hours=1))
    source, warehouse = Side(stamps[:-1]), Side(stamps)
    top = Window(START, START + timedelta(days=30))

    found = _run(source, warehouse, top, max_resources=50)

    _assert_partition(found, top)
    assert [c.delta for c in found if c.delta] == [-1]


def test_cut_points_are_whole_milliseconds() -> None:
    stamps = [START + timedelta(microseconds=1_234_567 * n + 321) for n in range(1, 400)]
    source, warehouse = Side(stamps), Side(stamps[::2])
    top = Window(START, START + timedelta(hours=1))

    found = _run(source, warehouse, top, max_resources=10)

    for counted in found[1:]:
        assert counted.window.start == floor_ms(counted.window.start)


def test_a_burst_inside_one_millisecond_is_not_cut_for_ever() -> None:
    burst = [START + timedelta(seconds=1)] * 2000
    source, warehouse = Side(burst), Side(burst[:-1])
    top = Window(START, START + timedelta(seconds=2))

    found = _run(source, warehouse, top, max_resources=10)

    _assert_partition(found, top)
    assert sum(c.delta or 0 for c in found) == 1


@pytest.mark.parametrize("start", [None, START])
def test_a_source_without_counts_gives_one_unchecked_window(start: datetime | None) -> None:
    warehouse = Side(_stamps(10, timedelta(days=1)))
    top = Window(start, START + timedelta(days=30))

    found = bisect_windows(
        top, lambda window: None, warehouse.count, warehouse.median, max_resources=1
    )

    assert found == [WindowCount(top, None, 10)]
    assert found[0].delta is None
