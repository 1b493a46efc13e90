"""Download files in parallel ahead of the thread that lands them, in manifest order.

``concurrency`` workers download; the landing thread takes files in order. At most
``concurrency + 1`` files are downloaded or downloading ahead of it, so disk use stays bounded
while the merge of one batch overlaps the downloads of the next. All requests share the
client's rate bucket, so parallel downloads stay within the source's rate limit. A stop signal
ends the submission of new downloads; those in flight finish and are handed over.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

Entry = TypeVar("Entry")
Result = TypeVar("Result")


class Prefetcher(Generic[Entry, Result]):
    """Runs ``fetch`` over ``entries`` on worker threads; hands results over in order.

    Args:
        entries: What to fetch, in the order results are wanted.
        fetch: Downloads one entry (runs on a worker thread).
        concurrency: Workers.
        stop: When set, no further entry is started.
    """

    def __init__(
        self,
        entries: Iterable[Entry],
        fetch: Callable[[Entry], Result],
        concurrency: int,
        stop: threading.Event,
    ) -> None:
        self._waiting: deque[Entry] = deque(entries)
        self._running: deque[Future[Result]] = deque()
        self._fetch = fetch
        self._window = concurrency + 1
        self._stop = stop
        self._executor = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="bulk-download"
        )

    def __enter__(self) -> Prefetcher[Entry, Result]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def remaining(self) -> int:
        """Entries not yet handed over (waiting or in flight)."""
        return len(self._waiting) + len(self._running)

    def _fill(self) -> None:
        while self._waiting and len(self._running) < self._window and not self._stop.is_set():
            self._running.append(self._executor.submit(self._fetch, self._waiting.popleft()))

    def next(self) -> Result | None:
        """The next result in order (waiting for it), or None when nothing more will come.

        Raises:
            Exception: What ``fetch`` raised for that entry.
        """
        self._fill()
        if not self._running:
            return None
        result = self._running.popleft().result()
        self._fill()
        return result

    def close(self) -> None:
        """Start nothing more; wait for the downloads in flight to end."""
        self._waiting.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)
