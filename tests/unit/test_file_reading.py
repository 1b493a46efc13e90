"""Finding input files and reading NDJSON, NDJSON.gz and Bundle files."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from loaders.exceptions import InputError
from loaders.files import InputKind, discover_input_files, iter_file_items
from loaders.resources import ParsedResource, Rejection, RejectReason
from tests.fhir_samples import patient, write_ndjson


def test_discovers_data_files_in_order_and_skips_metadata(tmp_path: Path) -> None:
    for name in (
        "b/Patient.ndjson",
        "a.ndjson.gz",
        "c.json",
        "_defects.json",
        ".hidden.ndjson",
        "_meta/Patient.ndjson",
        "notes.txt",
        "x.jsonl",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = discover_input_files(tmp_path)
    assert [file.path.relative_to(tmp_path).as_posix() for file in found] == [
        "a.ndjson.gz",
        "b/Patient.ndjson",
        "c.json",
        "x.jsonl",
    ]
    assert [(file.kind, file.gzip) for file in found] == [
        (InputKind.NDJSON, True),
        (InputKind.NDJSON, False),
        (InputKind.JSON, False),
        (InputKind.NDJSON, False),
    ]


def test_missing_or_empty_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        discover_input_files(tmp_path / "nope")
    with pytest.raises(InputError, match=r"no \.ndjson"):
        discover_input_files(tmp_path)
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="not a FHIR data file"):
        discover_input_files(tmp_path / "data.csv")


def test_ndjson_lines_keep_their_numbers_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "p.ndjson", [patient("p1"), b"", b"{broken", patient("p2")])
    items = list(iter_file_items(discover_input_files(path)[0]))
    assert [item.line_number for item in items] == [1, 3, 4]
    assert isinstance(items[1].result, Rejection)
    assert items[1].result.reason is RejectReason.INVALID_JSON
    assert items[1].raw == b"{broken"


def test_gzip_ndjson_and_a_truncated_gzip_stream(tmp_path: Path) -> None:
    lines = b"".join(orjson.dumps(patient(f"p{i}")) + b"\n" for i in range(2000))
    good = tmp_path / "good.ndjson.gz"
    good.write_bytes(gzip.compress(lines))
    assert len(list(iter_file_items(discover_input_files(good)[0]))) == 2000

    truncated = tmp_path / "cut.ndjson.gz"
    truncated.write_bytes(gzip.compress(lines)[:-200])
    items = list(iter_file_items(discover_input_files(truncated)[0]))
    accepted = [item for item in items if isinstance(item.result, ParsedResource)]
    assert 0 < len(accepted) < 2000
    last = items[-1].result
    assert isinstance(last, Rejection) and last.reason is RejectReason.UNREADABLE_FILE


def test_bundle_file_entries_and_entry_errors_carry_bundle_paths(tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:a", "resource": patient("a")},
            {"resource": {"resourceType": "Patient", "meta": {"lastUpdated": "bad"}}},
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_bytes(orjson.dumps(bundle))
    first, second = iter_file_items(discover_input_files(path)[0])
    assert isinstance(first.result, ParsedResource) and first.result.id == "a"
    assert isinstance(second.result, Rejection)
    assert second.result.json_path == "Bundle.entry[1].resource.id"


def test_single_resource_json_file_and_a_json_array(tmp_path: Path) -> None:
    single = tmp_path / "one.json"
    single.write_bytes(orjson.dumps(patient("solo")))
    (item,) = iter_file_items(discover_input_files(single)[0])
    assert isinstance(item.result, ParsedResource) and item.result.id == "solo"
    array = tmp_path / "many.json"
    array.write_bytes(orjson.dumps([patient("x")]))
    (item,) = iter_file_items(discover_input_files(array)[0])
    assert isinstance(item.result, Rejection) and item.result.reason is RejectReason.NOT_AN_OBJECT


def test_bundle_on_an_ndjson_line_is_split(tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"resource": patient("a")}, {"resource": patient("b")}],
    }
    path = write_ndjson(tmp_path / "bundles.ndjson", [bundle])
    items = list(iter_file_items(discover_input_files(path)[0]))
    assert [item.result.id for item in items if isinstance(item.result, ParsedResource)] == [
        "a",
        "b",
    ]
    assert {item.line_number for item in items} == {1}
