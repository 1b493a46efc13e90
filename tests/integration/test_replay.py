"""``fhir-elt replay``: the raw tables rebuilt from the landing zone alone equal the live ones.

A live history is built through the real loaders: two file loads (the second with newer
versions of some patients, an older one that must not win, and a line that is quarantined), a
REST sync from the local test server, and a reconciliation that marks a resource deleted. A
replay into an empty warehouse from the same landing zone must give the same rows, column for
column; a second replay must change nothing; ``--types`` and ``--since`` select pages; a
corrupted or missing page stops the replay, naming the file, before anything is merged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from loaders.exceptions import LandingIntegrityError
from loaders.landing.zone import read_manifest
from loaders.load_files import load_files
from loaders.reconcile import run_reconcile
from loaders.replay import ReplayOptions, replay
from loaders.resources import parse_instant
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from tests.fhir_server import FhirTestServer
from tests.fhir_server.fixtures import SYNTHETIC_AS_OF
from tests.integration.rest_support import rest_config, run

COLUMNS = (
    "source_system, id, version_id, content_hash, version_sort_key, is_deleted, landing_file, "
    "fetched_at, request_id, last_updated, resource::varchar"
)


def _generate(out: Path) -> Path:
    generate(GenerateOptions(patients=4, seed=7, out=out, fmt="ndjson", as_of=SYNTHETIC_AS_OF))
    return out


def _second_batch(first: Path, out: Path) -> tuple[set[str], str]:
    """Newer versions of two patients, an older (losing) version of a third, one bad line."""
    out.mkdir(parents=True)
    patients = [orjson.loads(line) for line in (first / "Patient.ndjson").read_bytes().splitlines()]
    lines = []
    for patient in patients[:2]:
        meta = patient["meta"]
        newer = parse_instant(meta["lastUpdated"]) + timedelta(days=1)  # type: ignore[operator]
        meta["lastUpdated"] = newer.isoformat()
        meta["versionId"] = str(int(meta["versionId"]) + 1)
        patient["active"] = False
        lines.append(orjson.dumps(patient))
    older = patients[2]
    stamp = parse_instant(older["meta"]["lastUpdated"]) - timedelta(days=30)  # type: ignore[operator]
    older["meta"] = {"versionId": "1", "lastUpdated": stamp.isoformat()}
    older["active"] = False
    lines.append(orjson.dumps(older))
    lines.append(b'{"resourceType": "Patient", "id": ')  # quarantined, never replayed
    (out / "Patient.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return {patient["id"] for patient in patients[:2]}, older["id"]


def _tables(database: Path) -> dict[str, set[tuple[Any, ...]]]:
    """Every raw resource table's rows (all columns but dlt's load id)."""
    with duckdb.connect(str(database), read_only=True) as connection:
        names = [
            name
            for (name,) in connection.execute(
                "select table_name from information_schema.columns where table_schema = "
                "'raw_fhir' and column_name = 'content_hash'"
            ).fetchall()
        ]
        return {
            name: set(connection.execute(f"select {COLUMNS} from raw_fhir.{name}").fetchall())
            for name in names
        }


@dataclass(frozen=True)
class FilesHistory:
    settings: LoadSettings
    first: str
    second: str
    newer: set[str]
    older: str


def _rows(database: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql, params or []).fetchall()


def _rebuilt(settings: LoadSettings, tmp_path: Path, name: str) -> LoadSettings:
    # Its own directory: dlt keeps a pipeline's working state beside the warehouse file.
    return replace(settings, duckdb_path=tmp_path / name / "fhir.duckdb")


@pytest.fixture
def files_history(settings: LoadSettings, tmp_path: Path) -> FilesHistory:
    """Two file loads: the second with two newer patients, an older one, a bad line."""
    first = _generate(tmp_path / "batch1")
    files = replace(settings, source_system="files")
    one = load_files(first, files)
    newer, older = _second_batch(first, tmp_path / "batch2")
    two = load_files(tmp_path / "batch2", files)
    assert (one.exit_code, two.exit_code) == (0, 3)
    assert two.run.resources_merged == 2  # the older version lost
    return FilesHistory(files, one.run.run_id, two.run.run_id, newer, older)


def test_a_replay_into_an_empty_warehouse_equals_the_live_raw_tables(
    fhir_server: FhirTestServer,
    settings: LoadSettings,
    tmp_path: Path,
    files_history: FilesHistory,
) -> None:
    config = rest_config(fhir_server.base_url)
    assert run(settings, config, types="Patient,Condition").exit_code == 0
    gone = sorted(r["id"] for r in fhir_server.resources("Condition"))[0]
    fhir_server.delete("Condition", gone)
    marked = run_reconcile(
        config.name, settings, config=config, types="Condition", sweep_deletes=True
    )
    assert marked.exit_code == 0
    live = _tables(settings.duckdb_path)
    assert ("ehr", gone) in {(row[0], row[1]) for row in live["condition"] if row[5]}
    patients = {row[1]: row for row in live["patient"] if row[0] == "files"}
    # The newer versions come from the second run's page; the older one lost to the first's.
    assert all(files_history.second in patients[key][6] for key in files_history.newer)
    assert files_history.first in patients[files_history.older][6]

    rebuilt = _rebuilt(settings, tmp_path, "rebuilt")
    report = replay(rebuilt, ReplayOptions())

    assert report.exit_code == 0
    assert {source.run.source_system for source in report.sources} == {"ehr", "files"}
    assert _tables(rebuilt.duckdb_path) == live
    runs = _rows(
        rebuilt.duckdb_path,
        "select command, status, source_system from raw_fhir.load_runs order by source_system",
    )
    assert runs == [("replay", "succeeded", "ehr"), ("replay", "succeeded", "files")]
    manifest = _rows(rebuilt.duckdb_path, "select count(*) from raw_fhir.landing_manifest")
    replayed_pages = sum(source.run.landing_pages for source in report.sources)
    assert manifest == [(replayed_pages,)]

    load_ids = _rows(
        rebuilt.duckdb_path, "select id, _dlt_load_id from raw_fhir.patient order by id"
    )
    again = replay(rebuilt, ReplayOptions())
    assert sum(source.run.resources_merged for source in again.sources) == 0
    assert _tables(rebuilt.duckdb_path) == live
    assert (
        _rows(rebuilt.duckdb_path, "select id, _dlt_load_id from raw_fhir.patient order by id")
        == load_ids
    )
    into_live = replay(settings, ReplayOptions())
    assert sum(source.run.resources_merged for source in into_live.sources) == 0
    assert _tables(settings.duckdb_path) == live


def test_types_and_since_select_the_pages_a_replay_reads(
    settings: LoadSettings, tmp_path: Path, files_history: FilesHistory
) -> None:
    live = _tables(settings.duckdb_path)

    only_patients = _rebuilt(settings, tmp_path, "patients")
    replay(only_patients, ReplayOptions(types=("Patient",)))
    assert set(_tables(only_patients.duckdb_path)) == {"patient"}
    assert _tables(only_patients.duckdb_path)["patient"] == live["patient"]

    (second_manifest,) = (settings.landing_root / "files" / "_manifests").glob(
        f"{files_history.second}.ndjson"
    )
    since = min(page.created_at for page in read_manifest(second_manifest))
    recent = _rebuilt(settings, tmp_path, "recent")
    report = replay(recent, ReplayOptions(source_system="files", since=since))
    rows = _tables(recent.duckdb_path)
    # Only the second run's Patient page: its two newer patients and the older version of a
    # third (nothing newer stands in the rebuilt warehouse to beat it).
    assert report.sources[0].run.landing_pages == 1
    assert {row[1] for row in rows["patient"]} == {*files_history.newer, files_history.older}
    assert {row[6] for row in rows["patient"]} == {
        row[6] for row in live["patient"] if row[1] in files_history.newer
    }
    assert sum(len(table) for name, table in rows.items() if name != "patient") == 0
    until = _rebuilt(settings, tmp_path, "until")
    replay(until, ReplayOptions(source_system="files", until=since))
    first_only = _tables(until.duckdb_path)["patient"]
    assert all(files_history.first in row[6] for row in first_only)


def test_a_corrupted_or_missing_page_stops_the_replay_naming_it_before_any_merge(
    settings: LoadSettings,
    tmp_path: Path,
    files_history: FilesHistory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from loaders.cli import main

    live = _tables(settings.duckdb_path)
    patient_page = next(row[6] for row in live["patient"] if files_history.first in row[6])
    path = settings.landing_root / patient_page
    original = path.read_bytes()
    path.write_bytes(original[:-8] + bytes(8))  # a damaged tail: same size, other bytes

    rebuilt = _rebuilt(settings, tmp_path, "rebuilt")
    with pytest.raises(LandingIntegrityError, match=patient_page):
        replay(rebuilt, ReplayOptions())
    assert _tables(rebuilt.duckdb_path) == {}  # no raw table: nothing was merged
    assert _rows(rebuilt.duckdb_path, "select command, status from raw_fhir.load_runs") == [
        ("replay", "failed")
    ]

    # Into the live warehouse: refused before any merge, so nothing stored is touched.
    code = main(
        [
            "replay",
            "--warehouse",
            str(settings.duckdb_path),
            "--landing",
            str(settings.landing_root),
        ]
    )
    assert code == 1
    assert patient_page in capsys.readouterr().err
    assert _tables(settings.duckdb_path) == live

    path.unlink()
    with pytest.raises(LandingIntegrityError, match=f"{patient_page}.*missing"):
        replay(rebuilt, ReplayOptions(types=("Patient",)))
    path.write_bytes(original)
    assert replay(rebuilt, ReplayOptions()).exit_code == 0
    assert _tables(rebuilt.duckdb_path) == live


def test_bulk_exports_and_their_tombstones_replay_to_the_same_rows(
    fhir_server: FhirTestServer, settings: LoadSettings, tmp_path: Path
) -> None:
    from tests.integration.bulk_support import bulk_config
    from tests.integration.bulk_support import run as run_bulk

    config = bulk_config(fhir_server.base_url)
    assert run_bulk(settings, config).exit_code == 0
    gone = [r["id"] for r in fhir_server.resources("Observation")[:2]]
    for observation_id in gone:
        fhir_server.delete("Observation", observation_id)
    assert run_bulk(settings, config).deletions == len(gone)
    live = _tables(settings.duckdb_path)
    assert {row[1] for row in live["observation"] if row[5]} == set(gone)

    rebuilt = _rebuilt(settings, tmp_path, "rebuilt")
    assert replay(rebuilt, ReplayOptions()).exit_code == 0
    assert _tables(rebuilt.duckdb_path) == live
