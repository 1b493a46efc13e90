"""Block-wise NDJSON reading: lines across blocks, line endings, the digest, corrupt gzip tails."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import orjson
import pytest

from loaders.files import discover_input_files, iter_file_items
from loaders.files.reader import Digest, FileItem
from loaders.resources import ParsedResource, Rejection, RejectReason
from tests.fhir_samples import patient


def _read(path: Path, digest: Digest | None = None) -> list[FileItem]:
    (source,) = discover_input_files(path)
    return list(iter_file_items(source, digest))


def _accepted(items: list[FileItem]) -> list[tuple[int, str]]:
    return [
        (item.line_number, item.result.id)
        for item in items
        if isinstance(item.result, ParsedResource)
    ]


def _lines(count: int) -> list[bytes]:
    # Lines of different lengths, so block boundaries fall at every position within a line.
    return [orjson.dumps(patient(f"p{i}", gender="x" * (i % 13))) for i in range(count)]


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 7 bytes: nearly every line spans several blocks."""
    monkeypatch.setattr("loaders.files.reader._BLOCK_BYTES", 7)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_lines_spanning_blocks_are_whole_and_numbered(tmp_path: Path, compressed: bool) -> None:
    lines = _lines(40)
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / ("p.ndjson.gz" if compressed else "p.ndjson")
    path.write_bytes(gzip.compress(data) if compressed else data)
    items = _read(path)
    assert _accepted(items) == [(i + 1, f"p{i}") for i in range(40)]
    assert [item.raw for item in items] == lines


@pytest.mark.usefixtures("small_blocks")
def test_crlf_line_endings_and_a_last_line_without_newline(tmp_path: Path) -> None:
    lines = _lines(5)
    path = tmp_path / "crlf.ndjson"
    path.write_bytes(b"\r\n".join([*lines[:3], b"", *lines[3:]]))  # blank line 4, no final EOL
    items = _read(path)
    assert _accepted(items) == [(1, "p0"), (2, "p1"), (3, "p2"), (5, "p3"), (6, "p4")]
    assert [item.raw for item in items] == lines  # no stray \r kept with the landed bytes


def test_last_line_without_newline_in_one_block(tmp_path: Path) -> None:
    path = tmp_path / "p.ndjson"
    path.write_bytes(b"\n".join(_lines(3)))
    assert _accepted(_read(path)) == [(1, "p0"), (2, "p1"), (3, "p2")]


@pytest.mark.parametrize("block_bytes", [7, 8 * 1024 * 1024], ids=["small-blocks", "default"])
@pytest.mark.parametrize("name", ["p.ndjson", "p.ndjson.gz", "b.json", "b.json.gz"])
def test_digest_is_the_sha256_of_the_bytes_as_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int, name: str
) -> None:
    monkeypatch.setattr("loaders.files.reader._BLOCK_BYTES", block_bytes)
    lines = _lines(300)
    if name.startswith("b."):
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": orjson.loads(line)} for line in lines],
        }
        data = orjson.dumps(bundle)
    else:
        data = b"\n".join(lines) + b"\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    digest = hashlib.sha256()
    items = _read(path, digest)
    assert len(_accepted(items)) == 300
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_without_a_digest_the_items_are_the_same(tmp_path: Path) -> None:
    path = tmp_path / "p.ndjson.gz"
    path.write_bytes(gzip.compress(b"\n".join(_lines(20))))
    assert _read(path) == _read(path, hashlib.sha256())


@pytest.mark.parametrize("block_bytes", [7, 8 * 1024 * 1024], ids=["small-blocks", "default"])
def test_truncated_gzip_yields_every_whole_line_before_the_cut_then_a_rejection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    monkeypatch.setattr("loaders.files.reader._BLOCK_BYTES", block_bytes)
    lines = _lines(2000)
    stored = gzip.compress(b"\n".join(lines) + b"\n")[:-300]
    # What a decoder can recover from the truncated stream: the whole lines in it.
    recoverable = zlib.decompressobj(wbits=31).decompress(stored)
    whole = recoverable.count(b"\n")
    assert 0 < whole < 2000
    path = tmp_path / "cut.ndjson.gz"
    path.write_bytes(stored)
    items = _read(path, hashlib.sha256())
    assert _accepted(items) == [(i + 1, f"p{i}") for i in range(whole)]
    last = items[-1]
    assert len(items) == whole + 1
    assert isinstance(last.result, Rejection)
    assert last.result.reason is RejectReason.UNREADABLE_FILE
    assert (last.line_number, last.raw) == (whole + 1, b"")


@pytest.mark.parametrize("block_bytes", [7, 8 * 1024 * 1024], ids=["small-blocks", "default"])
def test_corrupt_gzip_body_keeps_the_lines_before_the_damage_then_a_rejection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    monkeypatch.setattr("loaders.files.reader._BLOCK_BYTES", block_bytes)
    lines = _lines(2000)
    stored = bytearray(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=1))
    middle = len(stored) // 2
    # The whole lines in the stream before the damaged bytes.
    intact = zlib.decompressobj(wbits=31).decompress(bytes(stored[:middle])).count(b"\n")
    assert 0 < intact < 2000
    stored[middle : middle + 64] = bytes(64)  # zeros in the middle of the deflate stream
    path = tmp_path / "bad.ndjson.gz"
    path.write_bytes(bytes(stored))
    items = _read(path)
    # Deflate has no checksum before its end, so what follows the damage may decode to
    # garbage lines (refused, or even parsed) before the check fails; the intact lines are all
    # there, and the file is reported unreadable.
    assert _accepted(items)[:intact] == [(i + 1, f"p{i}") for i in range(intact)]
    last = items[-1].result
    assert isinstance(last, Rejection) and last.reason is RejectReason.UNREADABLE_FILE
