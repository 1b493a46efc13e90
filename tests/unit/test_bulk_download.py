"""Downloading Bulk Data files: streamed to disk, counted by line, re-downloaded when short,
other hosts only when allowed, and the token only where it belongs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loaders.bulk.download import (
    IncompleteDownloadError,
    LineCountingSink,
    count_lines,
    download_file,
    last_line_is_json,
)
from loaders.bulk.manifest import ManifestFile
from loaders.exceptions import RequestRejected
from loaders.http import FhirHttpClient, RetryPolicy, StaticToken

BASE = "https://ehr.example/fhir"
LINES = b"".join(b'{"resourceType":"Observation","id":"o%d"}\n' % i for i in range(10))


def entry(url: str = f"{BASE}/_bulk/files/j/Observation-1.ndjson", count: int | None = 10):
    return ManifestFile("output", "Observation", url, count, 0)


def client(*answers: httpx.Response | type[Exception], seen: list[httpx.Request] | None = None):
    script = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, type):
            raise answer("boom")
        return answer

    return FhirHttpClient(
        BASE,
        StaticToken("tok-secret"),
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=3, base_delay=0.0),
        sleep=lambda s: None,
    )


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"a\nb\nc\n"], 3),
        ([b"a\nb\nc"], 3),
        ([b"a\n", b"\n", b"b\n"], 2),
        ([b"\n\na\n\n\n", b"b"], 2),
        ([b"a", b"b\n", b"c", b"d"], 2),
        ([b""], 0),
    ],
)
def test_line_counting_survives_chunk_boundaries_and_blank_lines(chunks, lines, tmp_path) -> None:
    sink = LineCountingSink()
    for chunk in chunks:
        sink.write(chunk)
    assert sink.lines == lines
    path = tmp_path / "f.ndjson"
    path.write_bytes(b"".join(chunks))
    assert count_lines(path)[0] == lines


def test_rewinding_the_sink_resets_the_count(tmp_path) -> None:
    with (tmp_path / "f").open("wb") as handle:
        sink = LineCountingSink(handle)
        sink.write(b"a\nb\n")
        sink.seek(0)
        sink.truncate()
        sink.write(b"c\n")
    assert sink.lines == 1 and (tmp_path / "f").read_bytes() == b"c\n"


def test_a_last_line_cut_inside_the_json_is_detected(tmp_path) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.write_bytes(b'{"a":1}\n{"b":2}')
    cut.write_bytes(b'{"a":1}\n{"b":')
    assert last_line_is_json(whole) and not last_line_is_json(cut)


def test_a_complete_file_is_streamed_to_disk_with_the_token(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    downloaded = download_file(
        client(httpx.Response(200, content=LINES), seen=seen),
        entry(),
        tmp_path,
        send_token=True,
        allow_other_hosts=False,
    )
    assert downloaded.path.read_bytes() == LINES
    assert (downloaded.lines, downloaded.size, downloaded.attempts) == (10, len(LINES), 1)
    assert downloaded.path.name == f"{entry().key}.ndjson"
    assert seen[0].headers["Authorization"] == "Bearer tok-secret"
    assert seen[0].headers["Accept"] == "application/fhir+ndjson"
    assert not list(tmp_path.glob("*.part"))


class _Cut(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield LINES[:50]
        raise httpx.RemoteProtocolError("peer closed connection")


def test_short_and_cut_downloads_are_downloaded_again(tmp_path: Path) -> None:
    half = b"".join(LINES.splitlines(keepends=True)[:5])
    seen: list[httpx.Request] = []
    downloaded = download_file(
        client(
            httpx.Response(200, stream=_Cut()),  # cut mid-transfer: the client retries
            httpx.Response(200, content=half),  # clean but short: the line count catches it
            httpx.Response(200, content=LINES[:-30]),  # ends inside a line, count unknown
            httpx.Response(200, content=LINES),
            seen=seen,
        ),
        entry(count=10),
        tmp_path,
        send_token=True,
        allow_other_hosts=False,
        attempts=3,
    )
    assert downloaded.lines == 10 and downloaded.attempts == 3
    assert len(seen) == 4


def test_a_file_that_stays_short_fails_clearly(tmp_path: Path) -> None:
    half = b"".join(LINES.splitlines(keepends=True)[:5])
    with pytest.raises(IncompleteDownloadError, match="5 lines arrived, the manifest says 10"):
        download_file(
            client(httpx.Response(200, content=half)),
            entry(count=10),
            tmp_path,
            send_token=True,
            allow_other_hosts=False,
            attempts=2,
        )
    assert not list(tmp_path.iterdir())


def test_a_file_cut_inside_a_line_without_a_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IncompleteDownloadError, match="ends inside a line"):
        download_file(
            client(httpx.Response(200, content=LINES[:-30])),
            entry(count=None),
            tmp_path,
            send_token=True,
            allow_other_hosts=False,
            attempts=1,
        )


def test_other_hosts_are_refused_unless_allowed_and_never_get_the_token_by_default(
    tmp_path: Path,
) -> None:
    presigned = entry(url="https://storage.example/bucket/o1.ndjson?X-Signature=abc")
    with pytest.raises(RequestRejected, match="refusing to send a request"):
        download_file(
            client(httpx.Response(200, content=LINES)),
            presigned,
            tmp_path,
            send_token=False,
            allow_other_hosts=False,
        )
    seen: list[httpx.Request] = []
    download_file(
        client(httpx.Response(200, content=LINES), seen=seen),
        presigned,
        tmp_path,
        send_token=False,
        allow_other_hosts=True,
    )
    assert "Authorization" not in seen[0].headers
    assert seen[0].url.host == "storage.example"


def test_a_verified_file_left_by_a_crashed_run_is_reused(tmp_path: Path) -> None:
    (tmp_path / f"{entry().key}.ndjson").write_bytes(LINES)
    seen: list[httpx.Request] = []
    downloaded = download_file(
        client(httpx.Response(500), seen=seen),
        entry(),
        tmp_path,
        send_token=True,
        allow_other_hosts=False,
    )
    assert seen == [] and downloaded.attempts == 0 and downloaded.lines == 10
