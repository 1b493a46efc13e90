"""The run record written straight into DuckDB: the tables it creates are the ones dlt creates."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from loaders import runs as runs_module
from loaders.drift.ledger import SCHEMA_DRIFT_SCHEMA
from loaders.files.fingerprints import LoadedFile, loaded_files_table
from loaders.landing import LandingZone
from loaders.resources import RejectReason
from loaders.runs import record_run
from loaders.settings import LoadSettings
from loaders.warehouse.operational import (
    LOAD_RUNS_SCHEMA,
    REQUEST_LOG_SCHEMA,
    QuarantineRecord,
    RunRecord,
)
from loaders.warehouse.operational_writer import (
    OperationalRows,
    operational_table_ddl,
    write_operational_rows,
)
from loaders.warehouse.pipeline import make_pipeline

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def test_load_runs_schema_has_every_field_of_the_run_record() -> None:
    fields = [field.name for field in dataclasses.fields(RunRecord)]
    assert LOAD_RUNS_SCHEMA.names == fields


def _run(run_id: str) -> RunRecord:
    run = RunRecord(run_id, "test", "load files", NOW, finished_at=NOW, status="failed")
    run.error = "InputError (details withheld: they may quote row values)"
    run.counts_by_type = {"Patient": 2}
    run.add_resource_types(["Patient"])
    return run


def _record(settings: LoadSettings, run_id: str, direct: bool) -> None:
    """One run's complete record: every operational table a file or HTTP run writes."""
    refused = QuarantineRecord(
        run_id, "test", "in.ndjson", 3, "Patient", None, RejectReason.MISSING_ID, "$.id", None, NOW
    )
    loaded = LoadedFile(run_id, "test", "in.ndjson", 10, "ab" * 32, 2, 1, False, NOW)
    request = dict.fromkeys(REQUEST_LOG_SCHEMA.names)
    request.update(
        run_id=run_id, source_system="test", request_id="r1", method="GET",
        path_template="Patient", query_keys="_count", latency_ms=1.5, attempt=1,
        outcome="ok", response_bytes=10, started_at=NOW,
    )  # fmt: skip
    drift = dict(
        source_system="test", resource_type="Patient", json_path="Patient.x",
        observed_kind="string", expected_kind="absent", first_seen_landing_file="p.ndjson.gz",
        first_seen_at=NOW, run_id=run_id, count=1, policy="warn",
    )  # fmt: skip
    findings = pa.Table.from_pylist([drift], SCHEMA_DRIFT_SCHEMA)
    with pytest.MonkeyPatch.context() as patch:  # the run's drift findings, as a ledger gives them
        patch.setattr(runs_module, "take_run_findings", lambda _run_id: findings)
        record_run(
            make_pipeline(settings),
            LandingZone(settings.landing_root, "test", run_id),
            [refused],
            _run(run_id),
            requests=pa.Table.from_pylist([request], REQUEST_LOG_SCHEMA),
            loaded_files=loaded_files_table([loaded]),
            settings=settings if direct else None,
        )


def _columns(database: Path) -> dict[str, set[tuple[str, str, str]]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            "select table_name, column_name, data_type, is_nullable "
            "from information_schema.columns where table_schema = 'raw_fhir' "
            "and table_name not like '\\_dlt%' escape '\\'"
        ).fetchall()
    columns: dict[str, set[tuple[str, str, str]]] = {}
    for table, *column in rows:
        columns.setdefault(table, set()).add(tuple(column))  # type: ignore[arg-type]
    return columns


def _settings(root: Path) -> LoadSettings:
    settings = LoadSettings(duckdb_path=root / "fhir.duckdb", landing_root=root / "landing")
    settings.duckdb_path.parent.mkdir(parents=True)
    duckdb.connect(str(settings.duckdb_path)).close()  # the raw merge created the file
    return settings


def test_a_first_record_creates_the_tables_dlt_would(tmp_path: Path) -> None:
    by_dlt, direct = _settings(tmp_path / "dlt"), _settings(tmp_path / "direct")
    _record(by_dlt, "run-1", direct=False)
    _record(direct, "run-1", direct=True)
    expected = _columns(by_dlt.duckdb_path)
    assert set(expected) == {
        "load_runs", "landing_manifest", "quarantine", "request_log", "loaded_files",
        "schema_drift",
    }  # fmt: skip
    assert _columns(direct.duckdb_path) == expected
    # dlt was never needed: no load of it reached the warehouse
    with duckdb.connect(str(direct.duckdb_path), read_only=True) as connection:
        tables = connection.execute("select table_name from duckdb_tables()").fetchall()
    assert ("_dlt_loads",) not in tables


def test_the_direct_record_holds_the_same_rows_as_dlt(tmp_path: Path) -> None:
    by_dlt, direct = _settings(tmp_path / "dlt"), _settings(tmp_path / "direct")
    for run_id in ("run-1", "run-2", "run-1"):  # the last replaces run-1's rows
        _record(by_dlt, run_id, direct=False)
        _record(direct, run_id, direct=True)
    for table in ("load_runs", "quarantine", "request_log", "loaded_files", "schema_drift"):
        dlt_columns = "_dlt_load_id, _dlt_id" if table == "load_runs" else "_dlt_load_id"
        query = f"select * exclude ({dlt_columns}) from raw_fhir.{table} order by run_id"
        from_dlt, written = _rows(by_dlt.duckdb_path, query), _rows(direct.duckdb_path, query)
        assert len(written) == 2, table
        assert written == from_dlt, table


def _rows(database: Path, query: str) -> list[dict[str, object]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        cursor = connection.execute(query)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _on(database: Path) -> LoadSettings:
    return LoadSettings(
        duckdb_path=database, landing_root=database.parent / "landing", duckdb_memory_limit="64MB"
    )


def test_a_type_without_a_duckdb_match_is_left_to_dlt(tmp_path: Path) -> None:
    rows = pa.table({"key": pa.array(["a"]), "when": pa.array([NOW.date()], pa.date32())})
    entry = OperationalRows("odd", rows, ("key",))
    assert operational_table_ddl("raw_fhir", entry) is None
    database = tmp_path / "w.duckdb"
    duckdb.connect(str(database)).close()
    assert not write_operational_rows(_on(database), "1", [entry])
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.execute("select table_name from duckdb_tables()").fetchall() == []


@pytest.mark.parametrize("missing", ["file", "column"])
def test_nothing_is_written_when_dlt_must_create_or_evolve(tmp_path: Path, missing: str) -> None:
    database = tmp_path / "w.duckdb"
    rows = pa.table({"key": pa.array(["a"], pa.string()), "n": pa.array([1], pa.int64())})
    if missing == "column":
        with duckdb.connect(str(database)) as connection:
            connection.execute("create schema raw_fhir")
            connection.execute("create table raw_fhir.t (key varchar, _dlt_load_id varchar)")
    entries = [
        OperationalRows("fresh", rows, ("key",)),  # would be created, but the batch is refused
        OperationalRows("t", rows, ("key",)),
    ]
    assert not write_operational_rows(_on(database), "1", entries)
    if missing == "file":
        assert not database.exists()
    else:
        with duckdb.connect(str(database), read_only=True) as connection:
            tables = connection.execute("select table_name from duckdb_tables()").fetchall()
        assert tables == [("t",)]


def test_a_snowflake_run_never_records_into_a_local_duckdb_file(tmp_path: Path) -> None:
    """A warehouse file left at the DuckDB path must not receive a Snowflake run's record."""
    local = _settings(tmp_path / "local")
    _record(local, "earlier-duckdb-run", direct=True)
    on_snowflake = dataclasses.replace(local, destination="snowflake")
    asked_dlt: list[bool] = []

    def snowflake_pipeline() -> None:
        asked_dlt.append(True)
        raise RuntimeError("no Snowflake here")  # record_run logs it, never raises

    record_run(
        snowflake_pipeline,  # type: ignore[arg-type]
        LandingZone(local.landing_root, "test", "sf-run"),
        [],
        _run("sf-run"),
        settings=on_snowflake,
    )
    assert asked_dlt == [True]
    rows = pa.table({"key": pa.array(["a"]), "n": pa.array([1], pa.int64())})
    assert not write_operational_rows(on_snowflake, "1", [OperationalRows("t", rows, ("key",))])
    runs = _rows(local.duckdb_path, "select run_id from raw_fhir.load_runs")
    assert runs == [{"run_id": "earlier-duckdb-run"}]
