"""Small parts of replay and quarantine retry: request-id encoding, options, ids, re-parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from loaders.exceptions import ConfigError, LandingError
from loaders.landing import LandingZone, read_manifest
from loaders.landing.zone import expand_run_lengths, run_lengths
from loaders.quarantine.payload import parse_again
from loaders.quarantine.records import quarantine_id
from loaders.replay.selection import ReplayOptions, select_pages, source_systems
from loaders.resources import ParsedResource, Rejection, RejectReason

NOW = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_request_ids_survive_the_manifest_run_length_encoded(tmp_path: Path) -> None:
    ids = ["r/file-00000", "r/file-00000", None, "r/file-00001"]
    assert run_lengths(ids) == (("r/file-00000", 2), (None, 1), ("r/file-00001", 1))
    zone = LandingZone(tmp_path, "src", "run-1")
    zone.write_page("Patient", [b"{}"] * 4, NOW, request_ids=ids)
    zone.write_page("_deleted", [b"{}"], NOW, deletes="mark")
    manifest = zone.write_manifest()
    first, second = read_manifest(manifest)
    assert expand_run_lengths(first.request_ids or ()) == ids
    assert first.created_at == NOW  # the resources' fetched_at, to the microsecond
    assert (second.request_ids, second.deletes) == (None, "mark")


def test_replay_options_refuse_bad_ranges_and_unknown_types() -> None:
    with pytest.raises(ConfigError, match="--since must be before --until"):
        ReplayOptions(since=NOW, until=NOW)
    with pytest.raises(ConfigError, match="Patientt"):
        ReplayOptions(types=("Patient", "Patientt"))


def test_pages_are_selected_by_fetch_time_and_type_quarantine_never(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path, "src", "run-1")
    early = datetime(2026, 1, 1, tzinfo=UTC)
    zone.write_page("Patient", [b"{}"], early)
    zone.write_page("Observation", [b"{}"], NOW)
    zone.write_page("_quarantine", [b"x"], NOW)
    zone.write_page("_deleted", [b"{}"], NOW)
    zone.write_manifest()
    (tmp_path / "src" / "Patient" / "2026-01-01" / "lost-00001.ndjson.gz").write_bytes(b"")

    def types(options: ReplayOptions) -> list[str]:
        return [page.resource_type for page in select_pages(tmp_path, "src", options).pages]

    assert types(ReplayOptions()) == ["Patient", "Observation", "_deleted"]
    assert types(ReplayOptions(since=NOW)) == ["Observation", "_deleted"]
    assert types(ReplayOptions(until=NOW)) == ["Patient"]
    assert types(ReplayOptions(types=("Patient",))) == ["Patient", "_deleted"]
    assert select_pages(tmp_path, "src", ReplayOptions()).unlisted == [
        "src/Patient/2026-01-01/lost-00001.ndjson.gz"
    ]
    assert source_systems(tmp_path, None) == ["src"]
    with pytest.raises(LandingError, match="no run manifests for source system 'other'"):
        source_systems(tmp_path, "other")


def test_a_quarantine_id_is_short_stable_and_depends_on_the_whole_key() -> None:
    key = ("run-1", "data/Patient.ndjson", 3, "id")
    assert quarantine_id(*key) == quarantine_id(*key)
    assert len(quarantine_id(*key)) == 12
    assert quarantine_id(*key) != quarantine_id("run-1", "data/Patient.ndjson", 4, "id")


def test_parsing_again_splits_a_bundle_and_refuses_it_whole_if_one_entry_fails() -> None:
    patient = {"resourceType": "Patient", "id": "a"}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient}]}
    parsed = parse_again(orjson.dumps(bundle))
    assert isinstance(parsed, list) and [p.id for p in parsed] == ["a"]
    assert all(isinstance(p, ParsedResource) for p in parsed)
    bundle["entry"].append({"resource": {"resourceType": "Patient"}})  # type: ignore[union-attr]
    refused = parse_again(orjson.dumps(bundle))
    assert isinstance(refused, Rejection)
    assert (refused.reason, refused.json_path) == (
        RejectReason.MISSING_ID,
        "Bundle.entry[1].resource.id",
    )
    assert isinstance(parse_again(b'{"resourceType": '), Rejection)
