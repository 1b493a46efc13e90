"""A worker's block (texts as spans into the block) equals the block parsed whole, once restored."""

from __future__ import annotations

import orjson

from loaders.files.block_parse import parse_block, parse_block_spans
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
