"""Validate a page of resources on all cores; return the invalid ones' positions and findings.

A :class:`Validator` picks the resources its mode selects (every one, or a sample by content
hash), cuts them into chunks and validates the chunks in a process pool (``spawn`` start
method: safe with the loader's threads; each worker imports ``fhir.resources`` once). Only the
resources' JSON texts go to the workers, and only ``(position, path, code)`` of invalid ones
come back. With one worker, or a selection of at most ``MIN_CHUNK`` resources (a small REST
page, a sample), they are validated in this process (no pool to start or round trip).

Pools are kept per worker count for the life of the process (a later load reuses warm
workers) and shut down at exit, or by :func:`shutdown_pools`.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from loaders.exceptions import ValidationPoolError
from loaders.resources import ParsedResource
from loaders.validation.check import invalid_in, warm
from loaders.validation.errors import Finding
from loaders.validation.mode import ValidationMode

logger = logging.getLogger(__name__)

# Chunks per worker for one page: enough to balance uneven resource sizes, few enough that
# pickling and scheduling stay cheap next to validation itself.
CHUNKS_PER_WORKER = 4
MIN_CHUNK = 64

_pools: dict[int, ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _pool(workers: int) -> ProcessPoolExecutor:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=warm,
            )
            _pools[workers] = pool
        return pool


def shutdown_pools() -> None:
    """Stop every validation pool's workers (called at exit)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_pools)


@dataclass(frozen=True, slots=True)
class Invalid:
    """One invalid resource of a page: its position in the page and the finding."""

    position: int
    finding: Finding


class Validator:
    """Validates pages of resources as its mode says, and counts what it did.

    Args:
        mode: off, sample:N or full.
        workers: Processes to validate on (default: all cores); 1 validates in this process.

    Attributes:
        validated: Resources validated so far (those the mode selected).
        invalid_count: How many of them were invalid.
        seconds: Wall time spent validating (the loader waits for it).
    """

    def __init__(self, mode: ValidationMode, workers: int | None = None) -> None:
        self.mode = mode
        self.workers = max(1, workers or default_workers())
        self.validated = 0
        self.invalid_count = 0
        self.seconds = 0.0

    @property
    def throughput(self) -> float:
        """Resources validated per second of validation wall time (0 before any)."""
        return self.validated / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for a run's report: mode, workers, count, invalid, throughput."""
        return (
            f"validation {self.mode} ({self.workers} worker{'s' if self.workers > 1 else ''}): "
            f"{self.validated:,} validated, {self.invalid_count:,} invalid, "
            f"{self.throughput:,.0f} resources/s"
        )

    def invalid(self, resources: Sequence[ParsedResource]) -> list[Invalid]:
        """The invalid resources among those of ``resources`` the mode selects, in page order.

        Raises:
            ValidationPoolError: A worker process died (the page's outcome is unknown).
        """
        if not self.mode.enabled:
            return []
        selected = [
            position
            for position, resource in enumerate(resources)
            if self.mode.selects(resource.content_hash)
        ]
        if not selected:
            return []
        started = time.perf_counter()
        texts = [resources[position].text for position in selected]
        found = self._invalid_in(texts)
        self.seconds += time.perf_counter() - started
        self.validated += len(selected)
        self.invalid_count += len(found)
        return [Invalid(selected[index], Finding(path, code)) for index, path, code in found]

    def _invalid_in(self, texts: list[bytes]) -> list[tuple[int, str, str]]:
        if self.workers == 1 or len(texts) <= MIN_CHUNK:
            return invalid_in(texts)  # a pool round trip would cost more than it saves
        size = max(MIN_CHUNK, -(-len(texts) // (self.workers * CHUNKS_PER_WORKER)))
        pool = _pool(self.workers)
        futures: list[tuple[int, Future[list[tuple[int, str, str]]]]] = [
            (start, pool.submit(invalid_in, texts[start : start + size]))
            for start in range(0, len(texts), size)
        ]
        found: list[tuple[int, str, str]] = []
        try:
            for start, future in futures:
                found.extend((start + index, path, code) for index, path, code in future.result())
        except BrokenProcessPool as error:
            with _pools_lock:
                _pools.pop(self.workers, None)
            raise ValidationPoolError(
                f"a validation worker process died ({self.workers} workers); "
                "nothing of the page was merged"
            ) from error
        return found


def validator_for(mode: ValidationMode, workers: int | None = None) -> Validator | None:
    """A Validator for ``mode``, or None when it is ``off`` (nothing to do per page)."""
    return Validator(mode, workers) if mode.enabled else None
