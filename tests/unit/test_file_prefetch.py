"""Reading input files into pages, and running that on a background thread."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loaders.files import discover_input_files
from loaders.files.prefetch import FileRead, Prefetch, Refused
from loaders.resources import RejectReason
from tests.fhir_samples import patient, write_ndjson
from tests.file_pages_reference import Page, read_pages


def _encounter(resource_id: str) -> dict[str, object]:
    return {"resourceType": "Encounter", "id": resource_id, "status": "finished"}


def test_pages_per_type_refusals_and_a_file_read_after_each_file(tmp_path: Path) -> None:
    write_ndjson(
        tmp_path / "a.ndjson",
        [patient("p1"), _encounter("e1"), patient("p2"), b"{bad", patient("p3")],
    )
    write_ndjson(tmp_path / "b.ndjson", [_encounter("e2"), patient("p4"), _encounter("e3")])
    files = discover_input_files(tmp_path)
    messages = list(read_pages([(3, files[0]), (7, files[1])], 2, "run-1"))

    def describe(message: object) -> tuple[object, ...]:
        if isinstance(message, Page):
            return ("page", message.resource_type, [r.id for r in message.resources])
        if isinstance(message, Refused):
            return ("refused", message.rejection.reason, message.item.line_number)
        assert isinstance(message, FileRead)
        return ("read", message.index, message.items, message.refused)

    assert [describe(message) for message in messages] == [
        ("page", "Patient", ["p1", "p2"]),  # full at page_size 2
        ("refused", RejectReason.INVALID_JSON, 4),
        ("read", 3, 5, 1),
        ("page", "Encounter", ["e1", "e2"]),  # pages span files
        ("page", "Patient", ["p3", "p4"]),
        ("read", 7, 3, 0),
        ("page", "Encounter", ["e3"]),  # what is left is handed over at the end
    ]
    first, mixed = messages[0], messages[4]
    assert isinstance(first, Page) and first.request_ids == ["run-1/file-00003"] * 2
    assert isinstance(mixed, Page)
    assert mixed.request_ids == ["run-1/file-00003", "run-1/file-00007"]
    refused = messages[1]
    assert isinstance(refused, Refused) and refused.source_file == str(files[0].path)
    for done in (m for m in messages if isinstance(m, FileRead)):
        assert done.sha256 == hashlib.sha256(done.source.path.read_bytes()).hexdigest()


def test_prefetch_hands_over_every_item_in_order() -> None:
    with Prefetch(iter(range(100)), depth=2) as items:
        assert list(items) == list(range(100))


def test_prefetch_re_raises_the_source_error_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("broken source")

    received = []
    with pytest.raises(ValueError, match="broken source"), Prefetch(source()) as items:
        for item in items:
            received.append(item)
    assert received == [1, 2]


def test_prefetch_reads_at_most_depth_ahead_and_stops_when_left_early() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            for number in range(1000):
                produced.append(number)
                yield number
        finally:
            closed.set()

    with Prefetch(source(), depth=3) as items:
        iterator = iter(items)
        assert next(iterator) == 0
        # Wait until the reader is blocked on the full queue, then check how far it got.
        for _ in range(200):
            if len(produced) >= 5:
                break
            time.sleep(0.01)
        time.sleep(0.05)
        assert len(produced) <= 1 + 3 + 1  # taken, queued, and one waiting to be put
    assert closed.wait(2), "the source was not closed after leaving the block"
    assert len(produced) < 1000
