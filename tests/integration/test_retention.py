"""``fhir-elt retention``: which landing runs and request_log rows go, with a fake clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from loaders import cli
from loaders.exceptions import ConfigError
from loaders.load_files import load_files
from loaders.retention import RetentionSettings, apply_landing, operational_retention, plan_landing
from loaders.retention import cli as retention_cli
from loaders.retention.landing import (
    CURRENT_ROWS,
    NEWEST_OF_TYPE,
    NOT_SUCCEEDED,
    OPEN_QUARANTINE,
    TOO_RECENT,
    landed_runs,
)
from loaders.settings import LoadSettings
from loaders.warehouse.operational import REQUEST_LOG_SCHEMA
from tests.fhir_samples import patient, write_ndjson

LATER = timedelta(days=100)


def _load(tmp_path: Path, settings: LoadSettings, name: str, rows: list[object]) -> str:
    source = write_ndjson(tmp_path / "in" / name / "Patient.ndjson", rows)
    return load_files(source.parent, settings).run.run_id


@pytest.fixture
def landed(tmp_path: Path, settings: LoadSettings) -> dict[str, str]:
    """Six runs, each kept or deletable for one reason (see the test)."""
    settings = replace(settings, source_system="test")
    runs = {
        "superseded": _load(tmp_path, settings, "a", [patient("p1"), patient("p2")]),
        "failed": _load(tmp_path, settings, "f", [patient("p9")]),
        "current": _load(tmp_path, settings, "d", [patient("p5")]),
        "open_quarantine": _load(tmp_path, settings, "q1", [b"{not json"]),
        "newest_quarantine": _load(tmp_path, settings, "q2", [b"[1]"]),
        "newest": _load(
            tmp_path,
            settings,
            "b",
            [
                patient(name, version="2", updated="2026-11-21T10:00:00Z")
                for name in ("p1", "p2", "p9")
            ],
        ),
    }
    with duckdb.connect(str(settings.duckdb_path)) as connection:
        connection.execute(
            "update raw_fhir.load_runs set status = 'failed' where run_id = ?", [runs["failed"]]
        )
    return runs


def test_landing_plan_keeps_what_replay_and_lineage_need(
    landed: dict[str, str], settings: LoadSettings
) -> None:
    now = datetime.now(UTC)
    recent = plan_landing(settings.landing_root, settings.duckdb_path, 30, now)
    assert recent.deletable == []
    assert sorted(recent.kept[TOO_RECENT]) == sorted(landed.values())

    plan = plan_landing(settings.landing_root, settings.duckdb_path, 30, now + LATER)
    assert [run.run_id for run in plan.deletable] == [landed["superseded"]]
    assert plan.kept[NOT_SUCCEEDED] == [landed["failed"]]
    assert plan.kept[CURRENT_ROWS] == [landed["current"]]
    assert plan.kept[OPEN_QUARANTINE] == [landed["open_quarantine"]]
    assert sorted(plan.kept[NEWEST_OF_TYPE]) == sorted(
        [landed["newest_quarantine"], landed["newest"]]
    )

    doomed = plan.deletable[0]
    files = [settings.landing_root / page.landing_file for page in doomed.pages]
    assert all(path.exists() for path in files) and doomed.manifest.exists()
    assert apply_landing(settings.landing_root, plan) == len(files)
    assert not any(path.exists() for path in files) and not doomed.manifest.exists()
    remaining = {run.run_id for run in landed_runs(settings.landing_root)}
    assert remaining == set(landed.values()) - {landed["superseded"]}
    for run in landed_runs(settings.landing_root):  # the other runs' pages are untouched
        assert all((settings.landing_root / page.landing_file).exists() for page in run.pages)
    # a second pass finds nothing more to delete
    again = plan_landing(settings.landing_root, settings.duckdb_path, 30, now + LATER)
    assert again.deletable == []


def _request_rows(settings: LoadSettings, rows: list[dict[str, object]]) -> None:
    defaults = {
        "run_id": "r",
        "source_system": "test",
        "method": "GET",
        "path_template": "Patient",
        "query_keys": "",
        "status": 200,
        "latency_ms": 1.0,
        "attempt": 1,
        "outcome": "ok",
        "response_bytes": 10,
    }
    table = pa.Table.from_pylist([{**defaults, **row} for row in rows], REQUEST_LOG_SCHEMA)
    with duckdb.connect(str(settings.duckdb_path)) as connection:
        connection.register("incoming", table)
        connection.execute("create table raw_fhir.request_log as select * from incoming")


def test_request_log_rows_expire_unless_a_raw_row_traces_to_them(
    tmp_path: Path, settings: LoadSettings
) -> None:
    _load(tmp_path, settings, "a", [patient("p1")])
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        (traced,) = connection.execute("select request_id from raw_fhir.patient").fetchone()
    now = datetime.now(UTC)
    old = now - timedelta(days=40)
    _request_rows(
        settings,
        [
            {"request_id": "old-1", "started_at": old},
            {"request_id": "old-2", "started_at": old, "attempt": 2},
            {"request_id": traced, "started_at": old},
            {"request_id": "recent", "started_at": now - timedelta(days=1)},
        ],
    )
    dry = operational_retention(settings.duckdb_path, 30, now)
    assert (dry.request_log_rows, dry.kept_for_lineage) == (2, 1)
    applied = operational_retention(settings.duckdb_path, 30, now, apply=True)
    assert applied.request_log_rows == 2
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        rows = connection.execute("select request_id from raw_fhir.request_log").fetchall()
        left = {row[0] for row in rows}
    assert left == {traced, "recent"}


def test_retention_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FHIR_ELT_LANDING_RETENTION_DAYS", raising=False)
    monkeypatch.delenv("FHIR_ELT_OPERATIONAL_RETENTION_DAYS", raising=False)
    assert RetentionSettings.resolve() == RetentionSettings(None, None)  # keep forever
    monkeypatch.setenv("FHIR_ELT_LANDING_RETENTION_DAYS", "90")
    monkeypatch.setenv("FHIR_ELT_OPERATIONAL_RETENTION_DAYS", "30")
    assert RetentionSettings.resolve() == RetentionSettings(90, 30)
    assert RetentionSettings.resolve(landing_days=7) == RetentionSettings(7, 30)
    monkeypatch.setenv("FHIR_ELT_LANDING_RETENTION_DAYS", "soon")
    with pytest.raises(ConfigError, match="landing_retention_days"):
        RetentionSettings.resolve()
    with pytest.raises(ConfigError, match="at least 1 day"):
        RetentionSettings(landing_days=0)


def test_cli_lists_by_default_and_deletes_with_apply(
    landed: dict[str, str],
    settings: LoadSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(retention_cli, "_now", lambda: datetime.now(UTC) + LATER)
    paths = ["--warehouse", str(settings.duckdb_path), "--landing", str(settings.landing_root)]
    manifests = settings.landing_root / "test" / "_manifests"
    before = sorted(manifests.iterdir())

    assert cli.main(["retention", "landing", "--landing-days", "30", *paths]) == 0
    out = capsys.readouterr().out
    assert "would delete 1 run(s)" in out and landed["superseded"] in out
    assert "dry run: nothing deleted" in out
    assert sorted(manifests.iterdir()) == before

    assert cli.main(["retention", "--landing-days", "30", "--apply", *paths]) == 0
    out = capsys.readouterr().out
    assert "landing: deleted 1 run(s)" in out
    assert "request_log: no retention set" in out
    assert not (manifests / f"{landed['superseded']}.ndjson").exists()
    assert len(list(manifests.iterdir())) == len(before) - 1
