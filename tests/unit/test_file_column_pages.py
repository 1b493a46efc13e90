"""Column pages parsed in worker processes: the same pages, refusals and drift as one process.

:func:`tests.file_pages_reference.read_pages` (items parsed one by one in this process) is the
reference; :func:`loaders.files.column_pages.read_column_pages` must hand over the same
messages in the same order, whether blocks are parsed in forked workers or in this process,
whatever the block size, and its landing bytes and raw batches must equal the reference's.
"""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from loaders.drift.detector import detect_texts, observations_from_shapes
from loaders.files import discover_input_files
from loaders.files.column_pages import WORKER_NICENESS, BlockParser, ColumnPage, read_column_pages
from loaders.files.prefetch import FileRead, Refused
from loaders.landing.zone import compress_page
from loaders.warehouse.raw_columns import joined_lines, raw_batch_from_columns
from loaders.warehouse.raw_tables import build_raw_batch
from tests.fhir_samples import patient, write_ndjson
from tests.file_pages_reference import Page, read_pages

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _encounter(resource_id: str, **fields: object) -> dict[str, object]:
    return {"resourceType": "Encounter", "id": resource_id, "status": "finished", **fields}


def _inputs(root: Path) -> list[Path]:
    rows: list[object] = []
    for i in range(60):
        rows.append(patient(f"p{i}", gender="x" * (i % 7)))
        if i % 9 == 0:
            rows.append(_encounter(f"e{i}"))
        if i % 11 == 0:
            rows.append(b"{not json")
        if i % 13 == 0:
            rows.append(b"")  # a blank line
        if i % 17 == 0:
            rows.append(patient(f"d{i}", birth_date="2001-01-01"))  # drift: unknown element
        if i % 19 == 0:
            rows.append(_encounter(f"k{i}", status=3))  # drift: a number where a string goes
        if i % 23 == 0:
            rows.append({"resourceType": "Patient"})  # refused: no id
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": patient("b1")}, {"resource": _encounter("b2", odd=True)}, {}],
    }
    rows.insert(30, bundle)
    first = write_ndjson(root / "a.ndjson", rows)
    second = write_ndjson(root / "b.ndjson", [patient("p1", version="2"), _encounter("e0")])
    truncated = root / "c.ndjson.gz"
    whole = gzip.compress(b"".join(orjson.dumps(patient(f"t{i}")) + b"\n" for i in range(40)))
    truncated.write_bytes(whole[: len(whole) * 2 // 3])
    bundle_file = root / "d.json"
    bundle_file.write_bytes(orjson.dumps(bundle))
    return [first, second, truncated, bundle_file]


def _reference(files: list, page_size: int) -> list[object]:
    return list(read_pages(files, page_size, "run-1"))


def _columns(files: list, page_size: int, workers: int) -> list[object]:
    with BlockParser(workers) as parser:
        return list(read_column_pages(files, page_size, "run-1", parser))


def _same(reference: object, message: object) -> None:
    if isinstance(reference, Page):
        assert isinstance(message, ColumnPage)
        assert message.resource_type == reference.resource_type
        resources = reference.resources
        rows = message.rows.to_pydict()
        assert rows["id"] == [r.id for r in resources]
        assert [t.encode() for t in rows["resource"]] == [r.text for r in resources]
        assert rows["content_hash"] == [r.content_hash for r in resources]
        assert rows["version_id"] == [r.version_id for r in resources]
        assert rows["last_updated"] == [r.last_updated for r in resources]
        assert message.request_ids == reference.request_ids
        assert message.origins() == reference.origins
        # The drift walk done while parsing finds what decoding the landed text finds.
        texts = [r.text for r in resources]
        assert observations_from_shapes(message.resource_type, message.drift) == detect_texts(
            reference.resource_type, texts
        )
        # The landing page's bytes and the raw batch are the reference's.
        text = b"".join(text + b"\n" for text in texts)
        assert bytes(joined_lines(message.rows.column("resource"))) == text
        assert message.landing_bytes == compress_page(text, 1)
        kwargs = {
            "source_system": "src",
            "fetched_at": AT,
            "request_ids": reference.request_ids,
            "landing_file": "src/x.ndjson.gz",
        }
        batch = raw_batch_from_columns(reference.resource_type, message.rows, **kwargs)
        assert batch.equals(build_raw_batch(resources, **kwargs))
    elif isinstance(reference, Refused):
        assert isinstance(message, Refused)
        assert message.source_file == reference.source_file
        assert message.rejection == reference.rejection
        assert message.item.line_number == reference.item.line_number
        assert message.item.bundle_entry == reference.item.bundle_entry
        assert message.item.raw == reference.item.raw
    else:
        assert isinstance(reference, FileRead) and isinstance(message, FileRead)
        assert (message.index, message.sha256, message.items, message.refused) == (
            reference.index,
            reference.sha256,
            reference.items,
            reference.refused,
        )


@pytest.mark.parametrize(
    ("page_size", "block_bytes", "workers"),
    [(4, 8 * 1024 * 1024, 0), (4, 8 * 1024 * 1024, 2), (7, 300, 2), (1000, 53, 2), (5, 1, 0)],
)
def test_column_pages_match_item_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page_size: int, block_bytes: int, workers: int
) -> None:
    monkeypatch.setattr("loaders.files.reader._BLOCK_BYTES", block_bytes)
    _inputs(tmp_path)
    files = list(enumerate(discover_input_files(tmp_path)))
    reference = _reference(files, page_size)
    messages = _columns(files, page_size, workers)
    kinds = [type(m).__name__ for m in reference]
    assert {"Page", "Refused", "FileRead"} <= set(kinds)
    if page_size < 100:
        assert sum(isinstance(m, Page) and len(m.resources) == page_size for m in reference) > 1
    assert len(messages) == len(reference), (kinds, [type(m).__name__ for m in messages])
    for expected, message in zip(reference, messages, strict=True):
        _same(expected, message)


def test_drifted_rows_are_carried_to_their_page(tmp_path: Path) -> None:
    write_ndjson(
        tmp_path / "a.ndjson",
        [patient("p1"), patient("p2", birth_date="x"), patient("p3"), patient("p4", birth_date=1)],
    )
    files = list(enumerate(discover_input_files(tmp_path)))
    pages = [m for m in _columns(files, 2, 0) if isinstance(m, ColumnPage)]
    assert [len(page.drift) for page in pages] == [1, 1]
    (observation,) = observations_from_shapes("Patient", pages[1].drift)
    assert (observation.json_path, observation.count) == ("Patient.birth_date", 1)


def test_workers_run_at_a_lower_priority_than_the_loading_process() -> None:
    with BlockParser(1) as parser:
        assert parser._pool is not None
        worker_niceness = parser._pool.submit(os.nice, 0).result()

    assert worker_niceness == min(19, os.nice(0) + WORKER_NICENESS)
