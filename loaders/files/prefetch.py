"""Read and parse input files on a background thread, in pages, while the caller loads.

Parsing is pure Python and holds the GIL; what the loading thread does with a page (gzip it
into the landing zone, hash it, filter and insert it with DuckDB) mostly releases it. Running
the two on separate threads lets them overlap on two cores. The queue between them is bounded,
so memory stays at a few pages whatever the input's size.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, TypeVar

from loaders.exceptions import FhirEltError, ReaderError
from loaders.files.discover import InputFile
from loaders.files.reader import Digest, FileItem, iter_file_items
from loaders.resources import ParsedResource, Rejection
from loaders.validation.refusals import Origin

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page:
    """Up to ``page_size`` accepted resources of one type, in the order they were read.

    ``origins`` holds each resource's file and line (for the quarantine row, should
    validation refuse it).
    """

    resource_type: str
    resources: list[ParsedResource]
    request_ids: list[str]
    origins: list[Origin] = field(default_factory=list)


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


Message = Page | Refused | FileRead


@dataclass(slots=True)
class _Buffers:
    resources: dict[str, list[ParsedResource]] = field(default_factory=lambda: defaultdict(list))
    request_ids: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    origins: dict[str, list[Origin]] = field(default_factory=lambda: defaultdict(list))

    def take(self, resource_type: str) -> Page:
        return Page(
            resource_type,
            self.resources.pop(resource_type, []),
            self.request_ids.pop(resource_type, []),
            self.origins.pop(resource_type, []),
        )


def read_pages(
    files: Sequence[tuple[int, InputFile]], page_size: int, request_prefix: str
) -> Iterator[Message]:
    """Pages of accepted resources per type, refused items, and a FileRead after each file.

    Args:
        files: ``(index, file)`` pairs, read in this order.
        page_size: Accepted resources per page.
        request_prefix: ``request_id`` of a resource is ``<prefix>/file-<index>``.
    """
    buffers = _Buffers()
    for index, source in files:
        request_id = f"{request_prefix}/file-{index:05d}"
        source_file = str(source.path)
        digest = hashlib.sha256()
        done = FileRead(index=index, source=source, sha256="")
        for item in _checked_items(source, digest):
            done.items += 1
            result = item.result
            if isinstance(result, Rejection):
                done.refused += 1
                yield Refused(item, result, source_file)
                continue
            buffer = buffers.resources[result.resource_type]
            buffer.append(result)
            buffers.request_ids[result.resource_type].append(request_id)
            buffers.origins[result.resource_type].append(
                Origin(source_file, item.line_number, item.bundle_entry)
            )
            if len(buffer) >= page_size:
                yield buffers.take(result.resource_type)
        done.sha256 = digest.hexdigest()
        yield done
    for resource_type in list(buffers.resources):
        yield buffers.take(resource_type)


def _checked_items(source: InputFile, digest: Digest) -> Iterator[FileItem]:
    """``iter_file_items``, with an unexpected exception turned into a :class:`ReaderError`.

    The reader refuses bad input item by item; an exception escaping it is a bug, and its text
    could quote the input, so only its type and the position reached are reported.
    """
    line, entry = 0, None
    try:
        for item in iter_file_items(source, digest):
            line, entry = item.line_number, item.bundle_entry
            yield item
    except FhirEltError:
        raise
    except Exception as error:
        where = f"line {line}" + (f", Bundle.entry[{entry}]" if entry is not None else "")
        raise ReaderError(
            f"{source.path}: reading stopped after {where} on an unexpected "
            f"{type(error).__name__} (a fhir-elt bug: please report it); the run was stopped"
        ) from error


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
