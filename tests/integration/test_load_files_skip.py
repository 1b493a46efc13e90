"""`load files` skips input files whose exact bytes a successful run already loaded."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pytest

from loaders.cli import main
from loaders.exceptions import LandingError
from loaders.load_files import LoadReport, load_files
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from tests.fhir_samples import patient, write_ndjson

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
_OPERATIONAL = ("load_runs", "landing_manifest", "quarantine", "request_log", "loaded_files")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic patients, one NDJSON file per resource type (never modified)."""
    out = tmp_path_factory.mktemp("skip") / "data"
    generate(GenerateOptions(patients=3, seed=11, out=out, as_of=AS_OF))
    return out


@pytest.fixture
def data(generated: Path, tmp_path: Path) -> Path:
    """A private copy of the generated files, free to change."""
    copy = tmp_path / "data"
    copy.mkdir()
    for source in generated.iterdir():
        (copy / source.name).write_bytes(source.read_bytes())
    return copy


def _query(settings: LoadSettings, sql: str, *params: object) -> list[tuple[object, ...]]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        return connection.execute(sql, list(params)).fetchall()


def _raw_tables(settings: LoadSettings) -> dict[str, list[tuple[object, ...]]]:
    """Every raw resource table's rows (key, content, version, load id)."""
    tables = [
        name
        for (name,) in _query(
            settings,
            "select distinct table_name from information_schema.columns "
            "where table_schema = 'raw_fhir' and column_name = 'content_hash' order by 1",
        )
        if name not in _OPERATIONAL
    ]
    return {
        table: _query(
            settings,
            f"select source_system, id, content_hash, version_sort_key, _dlt_load_id, "
            f"landing_file from raw_fhir.{table} order by source_system, id",
        )
        for table in tables
    }


def _loaded_files(
    settings: LoadSettings, report: LoadReport
) -> dict[str, tuple[bool, int, int, str]]:
    """File name -> (skipped, resources_read, resources_quarantined, sha256) of one run."""
    rows = _query(
        settings,
        "select source_file, skipped, resources_read, resources_quarantined, sha256 "
        "from raw_fhir.loaded_files where run_id = ?",
        report.run.run_id,
    )
    return {Path(str(row[0])).name: (row[1], row[2], row[3], row[4]) for row in rows}  # type: ignore[misc]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_second_run_skips_every_file_and_changes_nothing(
    data: Path, settings: LoadSettings
) -> None:
    first = load_files(data, settings)
    files = sorted(path.name for path in data.glob("*.ndjson"))
    assert first.exit_code == 0 and first.run.resources_merged == first.run.resources_read > 0
    read_first = _loaded_files(settings, first)
    assert sorted(read_first) == files
    assert all(not skipped for skipped, *_ in read_first.values())
    assert {name: row[3] for name, row in read_first.items()} == {
        name: _sha256(data / name) for name in files
    }
    assert sum(row[1] for row in read_first.values()) == first.run.resources_read
    before = _raw_tables(settings)

    second = load_files(data, settings)
    run = second.run
    assert second.exit_code == 0 and run.status == "succeeded"
    assert run.files_read == len(files)
    assert run.resources_read == first.run.resources_read
    assert run.resources_unchanged == run.resources_read
    assert (run.resources_landed, run.resources_merged, run.landing_pages) == (0, 0, 0)
    assert second.manifest_path is None
    assert _loaded_files(settings, second) == {
        name: (True, count, 0, sha) for name, (_, count, _, sha) in read_first.items()
    }
    assert _raw_tables(settings) == before


def test_a_changed_file_is_the_only_one_read_and_merges_its_one_new_version(
    data: Path, settings: LoadSettings
) -> None:
    first = load_files(data, settings)
    patients = data / "Patient.ndjson"
    stored = orjson.loads(patients.read_bytes().splitlines()[0])
    newer = {
        **stored,
        "meta": {**stored["meta"], "versionId": "99", "lastUpdated": "2026-11-01T12:00:00Z"},
        "gender": "unknown",
    }
    with patients.open("ab") as handle:
        handle.write(orjson.dumps(newer) + b"\n")
    in_file = len(patients.read_bytes().splitlines())

    second = load_files(data, settings)
    read = _loaded_files(settings, second)
    assert {name for name, row in read.items() if not row[0]} == {"Patient.ndjson"}
    assert read["Patient.ndjson"][1:] == (in_file, 0, _sha256(patients))
    run = second.run
    assert run.resources_read == first.run.resources_read + 1
    assert run.resources_merged == 1 and run.merged_by_type == {"Patient": 1}
    assert run.resources_unchanged == first.run.resources_read
    assert _query(
        settings,
        "select version_id, resource->>'gender' from raw_fhir.patient where id = ?",
        stored["id"],
    ) == [("99", "unknown")]

    third = load_files(data, settings)  # the changed file, now loaded, is skipped too
    assert all(row[0] for row in _loaded_files(settings, third).values())
    assert third.run.resources_read == second.run.resources_read


def test_a_file_with_a_quarantined_line_is_read_again_every_run(
    data: Path, settings: LoadSettings
) -> None:
    bad = write_ndjson(
        data / "extra.ndjson",
        [patient("extra-1"), b'{"resourceType":"Patient","name":[{"family":"X"}]}'],
    )
    reports = [load_files(data, settings) for _ in range(2)]
    for report in reports:
        assert report.exit_code == 3
        assert report.run.resources_quarantined == 1
        assert [(r.reason, r.count, r.first_line) for r in report.rejects] == [("missing_id", 1, 2)]
        read = _loaded_files(settings, report)
        assert read["extra.ndjson"][:3] == (False, 2, 1)
    # Only the file with the refused line is read again; the clean ones are skipped.
    assert {name for name, row in _loaded_files(settings, reports[1]).items() if not row[0]} == {
        bad.name
    }
    assert reports[1].run.resources_merged == 0
    # Each run records its refused line once (the quarantine key includes the run). Run ids of
    # one second sort by their random part: compare as sets of rows.
    assert sorted(
        _query(settings, "select run_id, source_file, line_number, reason from raw_fhir.quarantine")
    ) == sorted((report.run.run_id, str(bad), 2, "missing_id") for report in reports)
    assert _query(settings, "select status from raw_fhir.load_runs order by started_at") == [
        ("succeeded_with_rejects",),
        ("succeeded_with_rejects",),
    ]


def test_reread_flag_reads_every_file_again_and_merges_nothing(data: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "cli" / "fhir.duckdb"
    args = ["load", "files", str(data), "--source-system", "cli", "--warehouse", str(warehouse)]
    args += ["--landing", str(tmp_path / "cli-landing")]
    assert main(args) == 0
    assert main([*args, "--reread"]) == 0
    assert main(args) == 0
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        runs = connection.execute(
            "select runs.started_at, runs.resources_read, runs.resources_landed, "
            "runs.resources_merged, runs.resources_unchanged, "
            "count(*) filter (where files.skipped), count(*) filter (where not files.skipped) "
            "from raw_fhir.load_runs as runs "
            "join raw_fhir.loaded_files as files using (run_id) "
            "group by all order by runs.started_at"
        ).fetchall()
    files = len(list(data.glob("*.ndjson")))
    (_, read, *_), reread, skipped = runs
    # --reread: every file read and landed again; the merge finds nothing new.
    assert reread[1:] == (read, read, 0, read, 0, files)
    # Without it, the next run skips every file again.
    assert skipped[1:] == (read, 0, 0, read, files, 0)


def test_another_source_system_does_not_skip(data: Path, settings: LoadSettings) -> None:
    first = load_files(data, settings)
    other = load_files(data, replace(settings, source_system="other-ehr"))
    assert all(not row[0] for row in _loaded_files(settings, other).values())
    assert other.run.resources_merged == first.run.resources_read
    assert _query(
        settings, "select source_system, count(*) from raw_fhir.patient group by 1 order by 1"
    ) == [("other-ehr", 3), ("test", 3)]


def test_the_files_of_a_failed_run_are_not_treated_as_loaded(
    data: Path, settings: LoadSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: object) -> Path:
        raise LandingError("cannot write landing manifest (simulated)")

    with monkeypatch.context() as patched:
        patched.setattr("loaders.landing.zone.LandingZone.write_manifest", refuse)
        with pytest.raises(LandingError, match="simulated"):
            load_files(data, settings)
    ((failed_run, status),) = _query(settings, "select run_id, status from raw_fhir.load_runs")
    assert status == "failed"
    # The failed run did read (and record) every file...
    files = len(list(data.glob("*.ndjson")))
    assert _query(
        settings, "select count(*) from raw_fhir.loaded_files where run_id = ?", failed_run
    ) == [(files,)]
    # ...yet the next run reads them all again (its rows had merged: nothing new).
    again = load_files(data, settings)
    assert again.run.status == "succeeded"
    assert all(not row[0] for row in _loaded_files(settings, again).values())
    assert len(_loaded_files(settings, again)) == files
    assert again.run.resources_merged == 0
    assert again.run.resources_unchanged == again.run.resources_read > 0
    # Once a run succeeded, the files are skipped.
    assert all(row[0] for row in _loaded_files(settings, load_files(data, settings)).values())
