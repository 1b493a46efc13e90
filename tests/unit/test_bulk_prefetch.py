"""Parallel downloads hand files over in manifest order, bounded, errors in place, stoppable."""

from __future__ import annotations

import threading
import time

import pytest

from loaders.bulk.prefetch import Prefetcher


def test_results_come_in_order_whatever_order_they_finish_in() -> None:
    def fetch(n: int) -> int:
        time.sleep(0.02 * (5 - n))  # later entries finish first
        return n * 10

    with Prefetcher(range(5), fetch, 3, threading.Event()) as files:
        got = [files.next() for _ in range(6)]
    assert got == [0, 10, 20, 30, 40, None]


def test_no_more_than_concurrency_plus_one_are_fetched_ahead() -> None:
    started: list[int] = []

    def fetch(n: int) -> int:
        started.append(n)
        return n

    with Prefetcher(range(10), fetch, 2, threading.Event()) as files:
        time.sleep(0.05)
        assert files.next() == 0
        time.sleep(0.05)
        assert len(started) <= 4, "at most 3 ahead of the one handed over"
        assert files.remaining == 9


def test_an_error_is_raised_for_its_own_entry() -> None:
    def fetch(n: int) -> int:
        if n == 1:
            raise ValueError("entry 1")
        return n

    with Prefetcher(range(3), fetch, 2, threading.Event()) as files:
        assert files.next() == 0
        with pytest.raises(ValueError, match="entry 1"):
            files.next()


def test_a_stop_starts_nothing_new_but_hands_over_what_is_in_flight() -> None:
    stop = threading.Event()
    with Prefetcher(range(10), lambda n: n, 1, stop) as files:
        assert files.next() == 0
        stop.set()
        rest = []
        while (item := files.next()) is not None:
            rest.append(item)
    assert len(rest) <= 2
