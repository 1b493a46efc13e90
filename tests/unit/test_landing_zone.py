"""Landing pages: immutable, deterministic, verified against their manifest when read."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loaders.exceptions import LandingError, LandingIntegrityError
from loaders.landing import LandingZone, read_manifest, read_page

NOW = datetime(2026, 11, 22, 4, 30, tzinfo=UTC)


def test_pages_round_trip_through_the_manifest(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path, "ehr-a", "run1")
    lines = [b'{"resourceType":"Patient","id":"p1"}', b'{"resourceType":"Patient","id":"p2"}']
    page = zone.write_page("Patient", lines, NOW)
    assert page.landing_file == "ehr-a/Patient/2026-11-22/run1-00001.ndjson.gz"
    assert page.resource_count == 2
    manifest = zone.write_manifest()
    (listed,) = read_manifest(manifest)
    assert listed == page
    assert list(read_page(tmp_path, listed)) == lines


def test_page_bytes_are_deterministic(tmp_path: Path) -> None:
    first = LandingZone(tmp_path / "a", "s", "run").write_page("Patient", [b"{}"], NOW)
    second = LandingZone(tmp_path / "b", "s", "run").write_page("Patient", [b"{}"], NOW)
    assert first.sha256 == second.sha256


def test_a_page_is_never_overwritten(tmp_path: Path) -> None:
    LandingZone(tmp_path, "s", "run").write_page("Patient", [b"{}"], NOW)
    with pytest.raises(LandingError, match="refusing to overwrite"):
        LandingZone(tmp_path, "s", "run").write_page("Patient", [b"{}"], NOW)


def test_tampered_or_truncated_pages_fail_verification(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path, "s", "run")
    page = zone.write_page("Patient", [b"{}", b"{}"], NOW)
    (tmp_path / page.landing_file).write_bytes(gzip.compress(b"{}\n", mtime=0))
    with pytest.raises(LandingIntegrityError, match="sha256"):
        list(read_page(tmp_path, page))


@pytest.mark.parametrize("name", ["", "Upper", "has space", "../escape", "x" * 70])
def test_source_system_names_are_safe_directory_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(LandingError, match="source system names"):
        LandingZone(tmp_path, name, "run")
