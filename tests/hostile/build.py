"""Write the big and byte-level hostile inputs at test time (nothing of megabytes is committed).

Deep nesting, a huge resource, enormous pages (an NDJSON file and a Bundle of thousands of
resources), invalid UTF-8 and broken gzip streams. ``python -m tests.hostile.build DIR`` writes
every generated file into DIR; ``--table`` prints the README's corpus table.
"""

from __future__ import annotations

import gzip
import sys
from functools import partial
from pathlib import Path

import orjson

from tests.hostile.cases import MARKER, Expected, HostileCase, Key, all_cases

UPDATED = "2026-11-20T10:00:00Z"
HUGE_TEXT_BYTES = 16 * 1024 * 1024
PAGE_LINES = 20_000
BUNDLE_ENTRIES = 5_000
GZIP_LINES = 400


def patient(resource_id: str, **fields: object) -> dict[str, object]:
    """A small Patient carrying the marker in its name."""
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "meta": {"versionId": "1", "lastUpdated": UPDATED},
        "name": [{"family": f"{MARKER}-Family"}],
        **fields,
    }


def _line(document: object) -> bytes:
    return orjson.dumps(document) + b"\n"


def _nested_extension(levels: int) -> dict[str, object]:
    """An extension nested ``levels`` times (two JSON levels each: object and array)."""
    node: dict[str, object] = {"url": "http://example.org/leaf", "valueString": MARKER}
    for _ in range(levels):
        node = {"url": "http://example.org/nest", "extension": [node]}
    return node


def _deep_array_text(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def _deep_ok(directory: Path) -> Path:
    # 100 extension levels = 200 JSON levels + the resource: under orjson's 254.
    return _write(
        directory,
        "deep_nesting_ok.ndjson",
        _line(patient("deep-ok", extension=[_nested_extension(100)])),
    )


def _deep_resource(levels: int, name: str, directory: Path) -> Path:
    head = orjson.dumps(patient(f"deep-{levels}"))[:-1]
    bad = head + b',"extension":[{"url":"http://example.org/x","valueString":"' + MARKER.encode()
    bad += b'"}],"zzDeep":' + _deep_array_text(levels) + b"}\n"
    return _write(directory, name, bad + _line(patient(f"deep-{levels}-ok")))


def _deep_bundle(directory: Path) -> Path:
    deep = orjson.dumps(patient("deep-entry"))[:-1] + b',"zzDeep":' + _deep_array_text(300) + b"}"
    text = (
        b'{"resourceType":"Bundle","type":"collection","entry":[{"resource":'
        + orjson.dumps(patient("deep-bundle-ok"))
        + b'},{"resource":'
        + deep
        + b"}]}"
    )
    return _write(directory, "deep_nesting_bundle.json", text)


def _huge_resource(scale: int, directory: Path) -> Path:
    div = f"<div>{MARKER}" + "x" * (HUGE_TEXT_BYTES * scale) + "</div>"
    resource = patient("huge-1", text={"status": "generated", "div": div})
    return _write(directory, "huge_resource.ndjson", _line(resource) + _line(patient("huge-2")))


def _page_ids(scale: int) -> list[str]:
    return [f"page-{number:06d}" for number in range(PAGE_LINES * scale)]


def _enormous_page(scale: int, directory: Path) -> Path:
    ids = _page_ids(scale)
    broken = len(ids) // 2
    lines = [
        _line(patient(resource_id))[:40] + b"\n"
        if position == broken
        else _line(patient(resource_id))
        for position, resource_id in enumerate(ids)
    ]
    return _write(directory, "enormous_page.ndjson", b"".join(lines))


def _bundle_ids(scale: int) -> list[str]:
    return [f"bundle-{number:06d}" for number in range(BUNDLE_ENTRIES * scale)]


def _enormous_bundle(scale: int, directory: Path) -> Path:
    ids = _bundle_ids(scale)
    entries = [{"search": {"mode": "match"}, "resource": patient(value)} for value in ids]
    entries[-1]["resource"]["id"] = f"{MARKER} bad id"  # type: ignore[index]
    document = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    return _write(directory, "enormous_bundle.json", orjson.dumps(document))


def _invalid_utf8(directory: Path) -> Path:
    good = _line(patient("u8-1"))
    marker = MARKER.encode()
    lines = [
        good,
        b'{"resourceType":"Patient","id":"u8-2","name":[{"family":"' + marker + b'\xff\xfe"}]}\n',
        b'{"resourceType":"Patient","id":"u8-3","name":[{"family":"' + marker + b'\xc0\xaf"}]}\n',
        b'{"resourceType":"Patient","id":"u8-4","name":[{"family":"' + marker + b'\\ud800"}]}\n',
        '{"resourceType":"Patient","id":"u8-5"}'.encode("utf-16") + b"\n",
        b'{"resourceType":"Patient","id":"u8-6","name":[{"family":"' + marker + b'\xe9"}]}\n',
    ]
    return _write(directory, "invalid_utf8.ndjson", b"".join(lines))


def _invalid_utf8_bundle(directory: Path) -> Path:
    text = orjson.dumps(
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient("u8b")}]}
    )
    return _write(directory, "invalid_utf8_bundle.json", text.replace(b"-Family", b"-\xff\xfe"))


def _bom(directory: Path) -> Path:
    return _write(directory, "utf8_bom.json", b"\xef\xbb\xbf" + orjson.dumps(patient("bom-1")))


def _gzip_ids() -> list[str]:
    return [f"gz-{number:04d}" for number in range(GZIP_LINES)]


def _gzip_text() -> bytes:
    # Distinct content per line so the stream does not compress to almost nothing.
    return b"".join(
        _line(patient(value, gender=["male", "female"][n % 2], birthDate=f"19{n % 100:02d}-01-01"))
        for n, value in enumerate(_gzip_ids())
    )


def _truncated_gzip(directory: Path) -> Path:
    data = gzip.compress(_gzip_text(), mtime=0)
    return _write(directory, "truncated.ndjson.gz", data[: len(data) // 2])


def _gzip_garbage_tail(directory: Path) -> Path:
    data = gzip.compress(_gzip_text(), mtime=0)
    return _write(directory, "garbage_tail.ndjson.gz", data + b"\x00" + MARKER.encode() * 4)


def _not_gzip(directory: Path) -> Path:
    return _write(directory, "not_gzip.ndjson.gz", _line(patient("notgz-1")))


def _keys(ids: list[str]) -> frozenset[Key]:
    return frozenset(("Patient", value) for value in ids)


def generated_cases(scale: int = 1) -> list[HostileCase]:
    """The generated cases; ``scale`` multiplies the huge resource and the enormous pages."""
    page_ids = _page_ids(scale)
    bundle_ids = _bundle_ids(scale)
    gz_keys = tuple(("Patient", value) for value in _gzip_ids())
    return [
        HostileCase(
            "deep_nesting_ok",
            "deep_nesting_ok.ndjson",
            "extensions nested 100 deep (about 200 JSON levels)",
            Expected(_keys(["deep-ok"])),
            build=_deep_ok,
        ),
        HostileCase(
            "deep_nesting_too_deep",
            "deep_nesting_too_deep.ndjson",
            "arrays nested 300 deep (more than orjson writes)",
            Expected(_keys(["deep-300-ok"]), (("too_deeply_nested", 1, "$"),)),
            build=partial(_deep_resource, 300, "deep_nesting_too_deep.ndjson"),
        ),
        HostileCase(
            "deep_nesting_beyond_parser",
            "deep_nesting_beyond_parser.ndjson",
            "arrays nested 5,000 deep (more than orjson reads)",
            Expected(_keys(["deep-5000-ok"]), (("invalid_json", 1, "$"),)),
            build=partial(_deep_resource, 5000, "deep_nesting_beyond_parser.ndjson"),
        ),
        HostileCase(
            "deep_nesting_bundle",
            "deep_nesting_bundle.json",
            "a Bundle entry nested 300 deep",
            Expected(
                _keys(["deep-bundle-ok"]),
                (("too_deeply_nested", 1, "Bundle.entry[1].resource.$"),),
            ),
            build=_deep_bundle,
        ),
        HostileCase(
            "huge_resource",
            "huge_resource.ndjson",
            f"one Patient with a {16 * scale} MB narrative",
            Expected(_keys(["huge-1", "huge-2"])),
            build=partial(_huge_resource, scale),
        ),
        HostileCase(
            "enormous_page",
            "enormous_page.ndjson",
            f"{len(page_ids):,} resources in one file, one line in the middle cut short",
            Expected(
                _keys([value for n, value in enumerate(page_ids) if n != len(page_ids) // 2]),
                (("invalid_json", len(page_ids) // 2 + 1, "$"),),
            ),
            build=partial(_enormous_page, scale),
        ),
        HostileCase(
            "enormous_bundle",
            "enormous_bundle.json",
            f"a searchset Bundle of {len(bundle_ids):,} entries, the last with a bad id",
            Expected(
                _keys(bundle_ids[:-1]),
                (("invalid_id", 1, f"Bundle.entry[{len(bundle_ids) - 1}].resource.id"),),
            ),
            build=partial(_enormous_bundle, scale),
        ),
        HostileCase(
            "invalid_utf8",
            "invalid_utf8.ndjson",
            "0xFF 0xFE, an overlong encoding, an escaped lone surrogate, a UTF-16 line, Latin-1",
            Expected(
                _keys(["u8-1"]),
                (
                    ("invalid_utf8", 2, "$"),
                    ("invalid_utf8", 3, "$"),
                    ("invalid_json", 4, "$"),
                    ("invalid_utf8", 5, "$"),
                    ("invalid_utf8", 6, "$"),
                ),
            ),
            build=_invalid_utf8,
            cli=True,
        ),
        HostileCase(
            "invalid_utf8_bundle",
            "invalid_utf8_bundle.json",
            "a Bundle file with 0xFF 0xFE inside a name",
            Expected(refused=(("invalid_utf8", 1, "$"),)),
            build=_invalid_utf8_bundle,
        ),
        HostileCase(
            "utf8_bom",
            "utf8_bom.json",
            "a resource file starting with a UTF-8 byte order mark",
            Expected(refused=(("invalid_json", 1, "$"),)),
            build=_bom,
        ),
        HostileCase(
            "truncated_gzip",
            "truncated.ndjson.gz",
            f"a gzip NDJSON file of {GZIP_LINES} lines cut in half",
            Expected(refused=(("unreadable_file", -1, "$"),), prefix=gz_keys),
            build=_truncated_gzip,
        ),
        HostileCase(
            "gzip_garbage_tail",
            "garbage_tail.ndjson.gz",
            "a complete gzip stream followed by garbage bytes",
            Expected(refused=(("unreadable_file", -1, "$"),), prefix=gz_keys),
            build=_gzip_garbage_tail,
        ),
        HostileCase(
            "not_gzip",
            "not_gzip.ndjson.gz",
            "plain NDJSON named .ndjson.gz",
            Expected(refused=(("unreadable_file", 1, "$"),)),
            build=_not_gzip,
        ),
    ]


def markdown_table(cases: list[HostileCase]) -> str:
    """The README's table: case, file, what is wrong, what fhir-elt must do."""
    rows = ["| case | file | what is wrong | what fhir-elt must do |", "|---|---|---|---|"]
    for case in cases:
        where = f"`{case.file}`" + (" (generated)" if case.build else "")
        rows.append(f"| {case.name} | {where} | {case.wrong} | {case.expected.outcome} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1:] == ["--table"]:
        sys.stdout.write(markdown_table(all_cases()) + "\n")
    else:
        out = Path(sys.argv[1])
        for case in generated_cases():
            sys.stdout.write(f"{case.build(out) if case.build else case.file}\n")
