"""Read input files as pages of arrow columns, parsing blocks of lines in worker processes.

The loading process reads each NDJSON file in blocks of whole lines (about 4 MB, hashing the
file's bytes on the way), and hands the blocks to a pool of worker processes, one per core
(:func:`parse_workers`), which decode, check, hash and drift-check every resource
(:func:`loaders.files.block_parse.parse_block_spans`) and send back arrow columns, with each
text as its place in the block: the loading process cuts the texts from its own copy of the
block, so they do not cross a pipe a second time. A block of a file stored uncompressed does
not cross it at all: the worker reads it from the file
(:func:`~loaders.files.block_parse.parse_file_slice`), checking that the file still holds
what the loading process read.

Results are taken in the order the blocks were read, and cut into pages exactly as the
one-by-one reader this replaced (kept as the tests' oracle: ``tests/file_pages_reference.py``)
cut them: the same pages, in the same order, with refused items and each file's
:class:`~loaders.files.prefetch.FileRead` at the same places. So the landing zone and the
merge see what a single process would produce.

Memory stays flat: at most ``workers + 2`` blocks are read ahead of the page being
assembled. Small inputs (under :data:`POOL_MIN_BYTES`) and ``FHIR_ELT_PARSE_WORKERS=0`` parse
in the loading process (no worker is started); JSON (Bundle) files always do.

Worker processes are forked: the pool is started before the warehouse connection is opened
(:class:`BlockParser`), and a worker only parses (orjson, msgspec, hashlib, pyarrow), never
runs DuckDB or dlt. Workers run at a lower priority than the loading process, whose merge is
the load's critical path (:data:`WORKER_NICENESS`).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

import pyarrow as pa

from loaders.drift.detector import Shape
from loaders.exceptions import ConfigError, InputChangedError, ReaderError
from loaders.files.block_parse import (
    BlockFailure,
    FileSlice,
    ParsedBlock,
    parse_block,
    parse_block_spans,
    parse_file_slice,
    parse_items,
)
from loaders.files.discover import InputFile, InputKind
from loaders.files.prefetch import FileRead, Refused
from loaders.files.reader import FileItem, LineBlock, iter_file_items, iter_line_blocks
from loaders.landing.zone import compress_page
from loaders.resources import Rejection
from loaders.validation.refusals import Origin
from loaders.warehouse.raw_columns import joined_lines

logger = logging.getLogger(__name__)

WORKERS_ENV = "FHIR_ELT_PARSE_WORKERS"
# Added to the workers' niceness (see _lower_priority).
WORKER_NICENESS = 10
# Below this much NDJSON, starting worker processes costs more than they save.
POOL_MIN_BYTES = 24 * 1024 * 1024


def parse_workers() -> int:
    """Worker processes for parsing: ``FHIR_ELT_PARSE_WORKERS``, else one per usable core.

    Raises:
        ConfigError: ``FHIR_ELT_PARSE_WORKERS`` is not a whole number >= 0.
    """
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        if not value.isdigit():
            raise ConfigError(f"{WORKERS_ENV} must be a whole number >= 0 (0: no workers)")
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def workers_for(files: Sequence[InputFile]) -> int:
    """How many workers to start for ``files``: none when there is too little to parse."""
    workers = parse_workers()
    if workers < 2 and WORKERS_ENV not in os.environ:
        return 0  # one core: the loading process parses, no process to feed
    ndjson = 0
    for source in files:
        if source.kind is InputKind.NDJSON:
            try:
                ndjson += source.path.stat().st_size * (4 if source.gzip else 1)
            except OSError:
                continue
    if ndjson < POOL_MIN_BYTES and WORKERS_ENV not in os.environ:
        return 0
    return workers


class _Parsed:
    """A block parsed in this process (no worker): the result, already there."""

    def __init__(self, parsed: ParsedBlock) -> None:
        self._parsed = parsed

    def result(self) -> ParsedBlock:
        return self._parsed

    def cancel(self) -> bool:
        return False


class _Remote:
    """A block being parsed by a worker; its texts are cut from the block here when done."""

    def __init__(self, future: Future[ParsedBlock | None], block: LineBlock, source: str) -> None:
        self._future = future
        self._block = block
        self._source = source

    def result(self) -> ParsedBlock:
        """The parsed block, with its texts.

        Raises:
            InputChangedError: The worker read the block from the file, and found other bytes
                there than this process read.
        """
        parsed = self._future.result()
        if parsed is None:
            raise InputChangedError(
                f"{self._source}: the file changed while it was being loaded (lines from "
                f"{self._block.first_line} on differ from what was read before); the run was "
                "stopped, what it committed before stays"
            )
        return parsed.with_texts(self._block.data)

    def cancel(self) -> bool:
        return self._future.cancel()


def _lower_priority() -> None:
    """Run a worker at a lower scheduling priority than the loading process.

    The loading process (landing, DuckDB inserts and commits) is the load's critical path; the
    workers are ahead of it and wait for it (at most ``read_ahead`` blocks in flight). At the
    same priority they take CPU the loading process is waiting for: on 2 cores the 1M-resource
    bench load took 17.0-17.3 s at niceness 0 and 15.5-16.4 s at 10 (interleaved runs).
    """
    os.nice(WORKER_NICENESS)


class BlockParser:
    """Parses blocks in ``workers`` forked processes, or in this process when ``workers`` is 0.

    Start it (``with``) before opening connections or threads the workers should not inherit.

    Args:
        workers: Worker processes (0: parse in this process).
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> BlockParser:
        if self.workers > 0:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_lower_priority,
            )
            # The first submit forks every worker: do it now, before the warehouse is opened.
            # Frozen objects are never visited by the workers' garbage collector, so the
            # memory pages they share with this process stay shared (not copied on write).
            gc.freeze()
            try:
                self._pool.submit(int).result()
            finally:
                gc.unfreeze()
            logger.info("parsing in %d worker process(es)", self.workers)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def read_ahead(self) -> int:
        """How many blocks may be in flight (read, not yet assembled into pages)."""
        return self.workers + 2 if self._pool is not None else 1

    def submit(self, block: LineBlock, source: InputFile) -> _Remote | _Parsed:
        """Start parsing ``block`` (of ``source``); ``.result()`` of what is returned is its
        ParsedBlock. A worker reads a block of an uncompressed file from the file itself."""
        if self._pool is None:
            return _Parsed(parse_block(block))
        path = str(source.path)
        if block.offset is not None:
            piece = FileSlice.of(path, block)
            return _Remote(self._pool.submit(parse_file_slice, piece), block, path)
        return _Remote(self._pool.submit(parse_block_spans, block), block, path)


@dataclass(slots=True)
class ColumnPage:
    """Up to ``page_size`` accepted resources of one type, as columns, in the order read.

    Attributes:
        resource_type: The type of every row.
        rows: The resources (:data:`loaders.warehouse.raw_columns.PARSED_SCHEMA`).
        request_ids: The request (input file) of each row.
        sources: ``(input file, rows)`` in row order.
        drift: The drifted shapes of each drifted row (rows without drift have no entry).
        landing_bytes: The rows' texts as a landing page's bytes
            (:func:`loaders.landing.zone.compress_page`), compressed on the reading thread.
    """

    resource_type: str
    rows: pa.Table
    request_ids: list[str]
    sources: list[tuple[str, int]]
    drift: list[frozenset[Shape]]
    landing_bytes: bytes

    def origins(self) -> list[Origin]:
        """Each row's input file, line and Bundle entry (for a quarantine row)."""
        lines = self.rows.column("line_number").to_pylist()
        entries = self.rows.column("bundle_entry").to_pylist()
        files = [source for source, count in self.sources for _ in range(count)]
        return [
            Origin(source, line, entry)
            for source, line, entry in zip(files, lines, entries, strict=True)
        ]

    @property
    def source_files(self) -> list[str]:
        """The input files the rows came from, sorted."""
        return sorted({source for source, _ in self.sources})


Message = ColumnPage | Refused | FileRead


@dataclass(slots=True)
class _Slices:
    """The rows gathered so far for one type's next page."""

    tables: list[pa.Table] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    sources: list[tuple[str, int]] = field(default_factory=list)
    drift: list[frozenset[Shape]] = field(default_factory=list)
    rows: int = 0

    def add(self, parsed: ParsedBlock, start: int, stop: int, request_id: str, source: str) -> None:
        count = stop - start
        self.tables.append(parsed.rows.slice(start, count))
        self.request_ids.extend([request_id] * count)
        if self.sources and self.sources[-1][0] == source:
            self.sources[-1] = (source, self.sources[-1][1] + count)
        else:
            self.sources.append((source, count))
        if parsed.drift:
            self.drift.extend(shapes for row, shapes in parsed.drift.items() if start <= row < stop)
        self.rows += count


class _PageAssembler:
    """Cuts parsed blocks into pages of one type, as ``read_pages`` cuts items."""

    def __init__(self, page_size: int, compresslevel: int) -> None:
        self.page_size = page_size
        self.compresslevel = compresslevel
        self._pending: dict[str, _Slices] = {}

    def add(self, parsed: ParsedBlock, request_id: str, source: str) -> Iterator[Message]:
        for event in parsed.events:
            if isinstance(event, FileItem):
                assert isinstance(event.result, Rejection)
                yield Refused(event, event.result, source)
                continue
            start = event.start
            while start < event.stop:
                pending = self._pending.get(event.resource_type)
                if pending is None:
                    pending = self._pending[event.resource_type] = _Slices()
                stop = min(event.stop, start + self.page_size - pending.rows)
                pending.add(parsed, start, stop, request_id, source)
                start = stop
                if pending.rows >= self.page_size:
                    yield self._take(event.resource_type)

    def flush(self) -> Iterator[ColumnPage]:
        for resource_type in list(self._pending):
            yield self._take(resource_type)

    def _take(self, resource_type: str) -> ColumnPage:
        pending = self._pending.pop(resource_type)
        rows = pa.concat_tables(pending.tables).combine_chunks()
        landing_bytes = compress_page(joined_lines(rows.column("resource")), self.compresslevel)
        return ColumnPage(
            resource_type, rows, pending.request_ids, pending.sources, pending.drift, landing_bytes
        )


@dataclass(slots=True)
class _FileState:
    """One input file while its blocks are in flight."""

    done: FileRead
    request_id: str
    source_file: str
    last_item: tuple[int, int | None] | None = None


def _reader_error(
    source_file: str, failure: BlockFailure, last: tuple[int, int | None] | None
) -> ReaderError:
    line, entry = (failure.line, failure.bundle_entry) if failure.line else (last or (0, None))
    where = f"line {line}" + (f", Bundle.entry[{entry}]" if entry is not None else "")
    return ReaderError(
        f"{source_file}: reading stopped after {where} on an unexpected "
        f"{failure.error_type} (a fhir-elt bug: please report it); the run was stopped"
    )


def read_column_pages(
    files: Sequence[tuple[int, InputFile]],
    page_size: int,
    request_prefix: str,
    parser: BlockParser,
    compresslevel: int = 1,
) -> Iterator[Message]:
    """Pages of accepted resources per type, refused items, and a FileRead after each file.

    The same messages, in the same order, as the one-by-one reader this replaced
    (``tests/file_pages_reference.py``), with pages as :class:`ColumnPage` columns.

    Args:
        files: ``(index, file)`` pairs, read in this order.
        page_size: Accepted resources per page.
        request_prefix: ``request_id`` of a resource is ``<prefix>/file-<index>``.
        parser: Where blocks are parsed.
        compresslevel: The landing zone's gzip level (pages are compressed here, on the
            reading thread, while the loading thread merges the page before).

    Raises:
        ReaderError: Parsing a file stopped on an unexpected exception (a fhir-elt bug).
    """
    assembler = _PageAssembler(page_size, compresslevel)
    in_flight: deque[tuple[_FileState, object]] = deque()

    def settle(state: _FileState, work: object) -> Iterator[Message]:
        if isinstance(work, FileRead):
            yield work
            return
        if isinstance(work, FileItem):  # reading stopped: the rest of the file is refused
            assert isinstance(work.result, Rejection)
            state.done.items += 1
            state.done.refused += 1
            yield Refused(work, work.result, state.source_file)
            return
        parsed: ParsedBlock = work.result()  # type: ignore[attr-defined]
        state.done.items += parsed.items
        state.done.refused += parsed.refused
        yield from assembler.add(parsed, state.request_id, state.source_file)
        if parsed.failure is not None:
            raise _reader_error(state.source_file, parsed.failure, state.last_item)
        state.last_item = parsed.last_item or state.last_item

    try:
        for index, source in files:
            digest = hashlib.sha256()
            state = _FileState(
                done=FileRead(index=index, source=source, sha256=""),
                request_id=f"{request_prefix}/file-{index:05d}",
                source_file=str(source.path),
            )
            pieces: Iterator[object]
            if source.kind is InputKind.NDJSON:
                pieces = (
                    parser.submit(piece, source) if isinstance(piece, LineBlock) else piece
                    for piece in iter_line_blocks(source, digest)
                )
            else:
                pieces = iter([_Parsed(parse_items(iter_file_items(source, digest)))])
            for work in pieces:
                in_flight.append((state, work))
                while len(in_flight) >= parser.read_ahead:
                    yield from settle(*in_flight.popleft())
            state.done.sha256 = digest.hexdigest()
            in_flight.append((state, state.done))
        while in_flight:
            yield from settle(*in_flight.popleft())
        yield from assembler.flush()
    finally:
        for _state, work in in_flight:
            cancel = getattr(work, "cancel", None)
            if cancel is not None:
                cancel()
