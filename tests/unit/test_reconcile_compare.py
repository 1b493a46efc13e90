"""Window checks: statuses, the repair budget's choice, deletion marks and how they rank."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pytest

from loaders.reconcile.compare import WindowCheck, choose_repairs
from loaders.reconcile.deletes import deletion_bundle, deletion_rows
from loaders.reconcile.sweep import Presence
from loaders.reconcile.warehouse import StoredRow
from loaders.reconcile.windows import WindowCount
from loaders.resources import ParsedResource, parse_resource_object
from loaders.rest.search import parse_page
from loaders.rest.windows import Window
from loaders.warehouse.raw_tables import build_raw_batch
from loaders.warehouse.version_filter import DuckDBVersionFilter

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _check(source: int | None, warehouse: int, day: int = 1, kind: str = "Patient") -> WindowCheck:
    window = Window(NOW + timedelta(days=day), NOW + timedelta(days=day + 1))
    return WindowCheck.from_count(kind, WindowCount(window, source, warehouse), NOW)


def test_statuses_follow_counts_and_what_was_done() -> None:
    assert _check(5, 5).status == "ok"
    assert _check(None, 5).status == "unchecked"
    assert _check(5, 4).status == "delta"
    repaired = _check(5, 4)
    repaired.repaired, repaired.warehouse_count = True, 5
    assert repaired.status == "repaired"
    over = _check(5, 4)
    over.over_budget = True
    assert over.status == "over_budget"
    row = over.row("run-1", "ehr")
    assert (row["delta"], row["initial_delta"], row["status"]) == (1, 1, "over_budget")


def test_the_budget_repairs_the_largest_differences_first() -> None:
    checks = [
        _check(10, 9, day=1),
        _check(10, 10, day=2),
        _check(10, 14, day=3),
        _check(None, 3, day=4),
        _check(12, 10, day=5),
    ]

    repaired, left = choose_repairs(checks, 2)

    assert [c.delta for c in repaired] == [-4, 2]
    assert [c.delta for c in left] == [1]
    none, all_left = choose_repairs(checks, 0)
    assert none == [] and [c.delta for c in all_left] == [-4, 2, 1]


def _parsed(version: str, stamp: str, gender: str) -> ParsedResource:
    resource = {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": version, "lastUpdated": stamp},
        "gender": gender,
    }
    parsed = parse_resource_object(resource)
    assert isinstance(parsed, ParsedResource)
    return parsed


def _batch(parsed: ParsedResource) -> pa.Table:
    return build_raw_batch(
        [parsed], source_system="ehr", fetched_at=NOW, request_ids=["r"], landing_file="page"
    )


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, StoredRow]:
    """A warehouse holding version 2 of Patient p1."""
    batch = _batch(_parsed("2", "2025-01-01T00:00:00Z", "female"))
    database = tmp_path / "w.duckdb"
    with duckdb.connect(str(database)) as connection:
        connection.execute("create schema raw_fhir")
        connection.register("batch", batch)
        connection.execute("create table raw_fhir.patient as select * from batch")
    row = batch.to_pylist()[0]
    return database, StoredRow(
        row["id"],
        row["version_id"],
        row["last_updated"],
        row["resource"],
        row["content_hash"],
        row["version_sort_key"],
    )


def test_a_deletion_mark_beats_the_stored_version_and_loses_to_a_later_one(
    stored: tuple[Path, StoredRow],
) -> None:
    database, row = stored
    mark = deletion_rows(
        "Patient", [row], source_system="ehr", noticed_at=NOW, run_id="run", landing_file="d"
    )
    assert mark.column("is_deleted").to_pylist() == [True]
    assert mark.column("resource").to_pylist() == [row.resource]
    assert mark.column("fetched_at").to_pylist() == [NOW]

    with DuckDBVersionFilter(database) as version_filter:
        assert version_filter.keep_newer("patient", mark).num_rows == 1

    with duckdb.connect(str(database)) as connection:
        connection.register("mark", mark)
        connection.execute("delete from raw_fhir.patient")
        connection.execute("insert into raw_fhir.patient select * from mark")

    replay = _batch(_parsed("2", "2025-01-01T00:00:00Z", "female"))
    older = _batch(_parsed("1", "2024-01-01T00:00:00Z", "male"))
    same_second_higher_version = _batch(_parsed("3", "2025-01-01T00:00:00Z", "other"))
    recreated = _batch(_parsed("4", "2026-01-01T00:00:00Z", "female"))
    with DuckDBVersionFilter(database) as version_filter:
        assert version_filter.keep_newer("patient", replay).num_rows == 0
        assert version_filter.keep_newer("patient", older).num_rows == 0
        assert version_filter.keep_newer("patient", same_second_higher_version).num_rows == 1
        assert version_filter.keep_newer("patient", recreated).num_rows == 1


def test_the_landed_deletion_is_a_bulk_style_delete_bundle() -> None:
    line = orjson.loads(deletion_bundle("Condition", "c-1", NOW))

    assert line["resourceType"] == "Bundle" and line["type"] == "transaction"
    assert line["entry"] == [{"request": {"method": "DELETE", "url": "Condition/c-1"}}]
    assert line["timestamp"] == "2026-06-01T00:00:00.000Z"


def test_ids_seen_by_id_searches_include_refused_entries_and_doubt_blocks_deletions() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Condition", "id": "c-1"}},
            {"resource": {"resourceType": "Condition", "id": "c-2", "meta": {"lastUpdated": "x"}}},
        ],
    }
    presence = Presence()
    presence.note(parse_page(bundle, "Condition", 1, "req", NOW))
    assert presence.seen["Condition"] == {"c-1", "c-2"}  # a refused entry still exists
    assert presence.uncertain == set()

    bundle["entry"].append({"resource": {"resourceType": "Condition"}})  # no id: cannot tell
    presence.note(parse_page(bundle, "Condition", 2, "req", NOW))
    assert presence.uncertain == {"Condition"}
