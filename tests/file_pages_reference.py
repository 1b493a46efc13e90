"""The one-by-one file reader that ``load files`` used before the parse workers: the oracle.

:func:`read_pages` parses every item in this process with :func:`loaders.files.reader.
iter_file_items` and cuts pages per type. :mod:`loaders.files.column_pages` (blocks parsed in
worker processes) must hand over the same pages, refusals and file reads in the same order;
``tests/unit/test_file_column_pages.py`` compares the two. Kept in tests: nothing in the
product calls it any more.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from loaders.exceptions import FhirEltError, ReaderError
from loaders.files.discover import InputFile
from loaders.files.prefetch import FileRead, Refused
from loaders.files.reader import Digest, FileItem, iter_file_items
from loaders.resources import ParsedResource, Rejection
from loaders.validation.refusals import Origin


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
