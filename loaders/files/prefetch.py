"""Run a producer of pages on a background thread while the caller loads, and the messages
besides pages that a file read hands over (a refused item, a file read to its end).

What the loading thread does with a page (gzip it into the landing zone, filter and insert it
with DuckDB) mostly releases the GIL; the reading thread feeds the parse workers
(:mod:`loaders.files.column_pages`). The queue between them is bounded, so memory stays at a
few pages whatever the input's size.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

from loaders.files.discover import InputFile
from loaders.files.reader import FileItem
from loaders.resources import Rejection

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Refused:
    """One item that cannot be loaded (its ``result`` is a Rejection)."""

    item: FileItem
    rejection: Rejection
    source_file: str


@dataclass(slots=True)
class FileRead:
    """One input file read to its end (its resources are in earlier or later pages).

    Attributes:
        index: Its position among the run's input files.
        source: The file.
        sha256: sha256 of its bytes as stored.
        items: Resources read from it (accepted and refused).
        refused: How many of them were refused.
    """

    index: int
    source: InputFile
    sha256: str
    items: int = 0
    refused: int = 0


_ITEM, _DONE, _ERROR = range(3)


class Prefetch(Generic[T]):
    """Runs an iterator on a daemon thread; iterate this object to receive its items in order.

    An exception raised by the iterator is re-raised in the consuming thread. Leaving the
    ``with`` block early stops the thread after the item it is producing.

    Args:
        source: The iterator to run (closed on the thread when it stops).
        depth: How many items may wait in the queue.
    """

    def __init__(self, source: Iterator[T], depth: int = 4) -> None:
        self._source = source
        self._queue: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fhir-read", daemon=True)

    def __enter__(self) -> Prefetch[T]:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # make room: a blocked put sees the stop
                self._queue.get(timeout=0.05)
        self._thread.join()

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._queue.get()
            if kind == _DONE:
                return
            if kind == _ERROR:
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]

    def _put(self, kind: int, value: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(_ITEM, item):
                    return
            self._put(_DONE, None)
        except BaseException as error:  # handed to the consuming thread, which raises it
            self._put(_ERROR, error)
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()
