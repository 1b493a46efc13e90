"""Blocks parsed by a worker: texts as spans into the block, and blocks read from the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from loaders.exceptions import InputChangedError
from loaders.files import discover_input_files
from loaders.files.block_parse import FileSlice, parse_block, parse_block_spans, parse_file_slice
from loaders.files.column_pages import BlockParser
from loaders.files.reader import LineBlock
from tests.fhir_samples import patient


def _block() -> LineBlock:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": patient("b1")}, {"resource": patient("b2", gender="other")}],
    }
    lines = [
        orjson.dumps(patient("p1")),
        b"  " + orjson.dumps(patient("p2", family="Ma\u00efa \u6771")) + b" \r",  # padded, CRLF
        b"",
        orjson.dumps(bundle),
        b"{not json",
        orjson.dumps({"resourceType": "Patient"}),  # refused: no id
        b"\t" + orjson.dumps(patient("p3", birth_date="2001-01-01")),  # drift: unknown element
        orjson.dumps(patient("p4")),
    ]
    return LineBlock(first_line=41, data=b"\n".join(lines))  # the last line without newline


def test_restored_texts_equal_the_block_parsed_in_one_go() -> None:
    block = _block()
    whole = parse_block(block)
    remote = parse_block_spans(block)

    assert "resource" not in remote.rows.column_names
    restored = remote.with_texts(block.data)

    assert restored.spans is None
    assert restored.rows.equals(whole.rows)
    assert restored.rows.column("resource").to_pylist()[1].startswith('{"resourceType"')
    assert restored.events == whole.events
    assert restored.drift == whole.drift
    assert (restored.items, restored.refused, restored.last_item) == (
        whole.items,
        whole.refused,
        whole.last_item,
    )


def test_only_bundle_entries_travel_as_texts() -> None:
    remote = parse_block_spans(_block())

    assert remote.spans is not None
    # rows: p1, p2, b1, b2 (written again from the Bundle), p3, p4
    assert sorted(remote.spans.others) == [2, 3]
    assert [start >= 0 for start in remote.spans.starts] == [True, True, False, False, True, True]


def test_a_block_parsed_in_this_process_is_returned_as_it_is() -> None:
    whole = parse_block(_block())

    assert whole.with_texts(b"ignored") is whole


# --- a block a worker reads from its file ---------------------------------------------------


def _file_block(tmp_path: Path) -> tuple[Path, LineBlock]:
    path = tmp_path / "patients.ndjson"
    head = orjson.dumps(patient("p0")) + b"\n"
    block = _block()
    path.write_bytes(head + block.data)
    return path, LineBlock(block.first_line, block.data, offset=len(head))


def test_a_worker_reading_the_block_from_the_file_parses_what_was_read(tmp_path: Path) -> None:
    path, block = _file_block(tmp_path)

    parsed = parse_file_slice(FileSlice.of(str(path), block))

    assert parsed is not None
    assert parsed.with_texts(block.data).rows.equals(parse_block(block).rows)


@pytest.mark.parametrize(
    "change",
    [
        lambda data: data.replace(b'"p1"', b'"q1"'),  # same length, other bytes
        lambda data: data[:-10],  # truncated
        None,  # removed
    ],
)
def test_a_file_changed_since_it_was_read_is_noticed(
    tmp_path: Path, change: Callable[[bytes], bytes] | None
) -> None:
    path, block = _file_block(tmp_path)
    piece = FileSlice.of(str(path), block)
    if change is None:
        path.unlink()
    else:
        path.write_bytes(change(path.read_bytes()))

    assert parse_file_slice(piece) is None


def test_a_changed_file_stops_the_read_with_its_name_and_line(tmp_path: Path) -> None:
    path, block = _file_block(tmp_path)  # the block as this process read it
    (source,) = discover_input_files(path)
    path.write_bytes(path.read_bytes().replace(b'"p4"', b'"q4"'))  # then the file changes

    with BlockParser(1) as parser, pytest.raises(InputChangedError) as raised:
        parser.submit(block, source).result()

    message = str(raised.value)
    assert str(path) in message and "lines from 41" in message
    assert "q4" not in message and "p4" not in message
