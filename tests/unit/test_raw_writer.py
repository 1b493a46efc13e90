"""RawTableWriter: filtered batches merged straight into DuckDB, committed in groups."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from loaders.resources import ParsedResource, parse_resource_object
from loaders.warehouse.raw_tables import build_raw_batch, empty_raw_batch
from loaders.warehouse.raw_writer import RawTableWriter
from tests.fhir_samples import patient

FETCHED_AT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
MEMORY = "256MB"


class _Boom(Exception):
    """Raised inside the writer's block to simulate a failure mid-run."""


def _batch(*resources: dict[str, object]) -> pa.Table:
    parsed = [parse_resource_object(resource) for resource in resources]
    assert all(isinstance(item, ParsedResource) for item in parsed)
    return build_raw_batch(
        parsed,  # type: ignore[arg-type]
        source_system="test",
        fetched_at=FETCHED_AT,
        request_ids=[None] * len(parsed),
        landing_file="test/Patient/page-1.ndjson.gz",
    )


def _v(resource_id: str, version: int) -> dict[str, object]:
    """Version ``version`` of a patient: later versions have a later lastUpdated."""
    return patient(
        resource_id,
        version=str(version),
        updated=f"2026-11-{10 + version:02d}T10:00:00Z",
        gender=f"g{version}",
    )


def _merge(writer: RawTableWriter, batch: pa.Table, table: str = "patient") -> int:
    """Filter ``batch`` through the writer's own version filter, write it; rows written."""
    before = writer.rows_written
    writer.write(table, writer.version_filter.keep_newer(table, batch))
    return writer.rows_written - before


def _stored(database: Path, table: str = "patient") -> dict[str, str]:
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            f"select id, version_id from raw_fhir.{table} order by id"
        ).fetchall()
    return dict(rows)


def test_versions_within_a_batch_keep_the_newest_whatever_the_order(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    with RawTableWriter(database, "1", memory_limit=MEMORY) as writer:
        _merge(writer, _batch(_v("a", 2), _v("a", 3), _v("a", 1), _v("b", 1), _v("b", 2)))
    assert _stored(database) == {"a": "3", "b": "2"}


def test_versions_across_batches_and_commit_groups_keep_the_newest(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    # commit_bytes=1: every batch is its own commit group.
    with RawTableWriter(database, "1", memory_limit=MEMORY, commit_bytes=1) as writer:
        assert _merge(writer, _batch(_v("a", 2), _v("b", 1))) == 2
        assert _merge(writer, _batch(_v("a", 4), _v("a", 3))) == 2  # both newer than stored 2
        assert _merge(writer, _batch(_v("a", 1))) == 0  # older than stored 4: filtered out
        assert _merge(writer, _batch(_v("b", 5), _v("a", 3))) == 1
    assert _stored(database) == {"a": "4", "b": "5"}
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.execute("select count(*) from raw_fhir.patient").fetchone() == (2,)


def test_an_older_version_after_a_newer_one_is_ignored_even_uncommitted(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    # One commit group: the filter must see the uncommitted row through the writer's connection.
    with RawTableWriter(database, "1", memory_limit=MEMORY) as writer:
        assert _merge(writer, _batch(_v("a", 3))) == 1
        assert _merge(writer, _batch(_v("a", 2))) == 0
    assert _stored(database) == {"a": "3"}


def test_rewriting_unchanged_rows_is_a_no_op(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    rows = _batch(_v("a", 1), _v("b", 1))
    with RawTableWriter(database, "load-1", memory_limit=MEMORY) as writer:
        _merge(writer, rows)
    with RawTableWriter(database, "load-2", memory_limit=MEMORY) as writer:
        assert _merge(writer, rows) == 0
        assert writer.rows_written == 0
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.execute(
            "select id, _dlt_load_id from raw_fhir.patient order by id"
        ).fetchall() == [("a", "load-1"), ("b", "load-1")]


def test_a_failure_rolls_back_only_the_uncommitted_group(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    first = _batch(_v("a", 1), _v("b", 1), _v("c", 1))
    second = _batch(_v("a", 2), _v("d", 1))
    assert second.nbytes < first.nbytes
    # The first batch fills a commit group; the second stays pending when the failure comes.
    with (
        pytest.raises(_Boom),
        RawTableWriter(database, "1", memory_limit=MEMORY, commit_bytes=first.nbytes) as writer,
    ):
        assert _merge(writer, first) == 3
        assert _merge(writer, second) == 2
        assert _stored_through(writer) == {"a": "2", "b": "1", "c": "1", "d": "1"}
        raise _Boom
    assert _stored(database) == {"a": "1", "b": "1", "c": "1"}


def _stored_through(writer: RawTableWriter) -> dict[str, str]:
    rows = writer._connection.execute(  # the writer's own (uncommitted) view
        "select id, version_id from raw_fhir.patient order by id"
    ).fetchall()
    return dict(rows)


def test_a_table_is_created_on_its_first_batch_and_kept_after(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    with RawTableWriter(database, "1", memory_limit=MEMORY) as writer:
        _merge(writer, _batch(_v("a", 1)))
        writer.write("encounter", empty_raw_batch())  # an empty batch only creates the table
    assert _stored(database, "encounter") == {}
    with RawTableWriter(database, "2", memory_limit=MEMORY) as writer:
        writer.write("patient", empty_raw_batch())  # exists: neither recreated nor emptied
        writer.write("observation", empty_raw_batch())
    assert _stored(database) == {"a": "1"}
    assert _stored(database, "observation") == {}


def _many(first: int, count: int, version: int = 1) -> pa.Table:
    """``count`` patients with ids ``p<first>`` ..., one raw row repeated with new ids."""
    one = _batch(_v("template", version))
    rows = one.take(pa.array([0] * count))
    ids = pa.array([f"p{number}" for number in range(first, first + count)])
    return rows.set_column(rows.schema.get_field_index("id"), "id", ids)


def _commits(writer: RawTableWriter) -> list[int]:
    """Record, at each commit from now on, the rows the writer has written so far."""
    written: list[int] = []
    commit = writer.commit

    def counting() -> None:
        written.append(writer.rows_written)
        commit()

    writer.commit = counting  # type: ignore[method-assign]
    return written


def test_commit_groups_end_at_row_group_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "w.duckdb"
    monkeypatch.setattr("loaders.warehouse.raw_writer.ROW_GROUP_ROWS", 4)
    with RawTableWriter(database, "1", memory_limit=MEMORY) as writer:
        commits = _commits(writer)
        for first in (0, 3, 6, 9):  # 3 rows a batch: boundaries at 4, 8 and 12 rows
            writer.write("patient", _many(first, 3))
        assert commits == [4, 8, 12]
        # Newer versions of stored keys, across a boundary: each part deletes what it replaces.
        writer.write("patient", writer.version_filter.keep_newer("patient", _many(0, 6, 2)))
        assert commits == [4, 8, 12, 16]
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            "select count(*), count(distinct id), count(*) filter (version_id = '2') "
            "from raw_fhir.patient"
        ).fetchone()
    assert rows == (12, 12, 6)


def test_a_large_first_load_leaves_full_row_groups(tmp_path: Path) -> None:
    # 260,000 rows in 10,000-row batches, as `load files` writes a large first load. Without
    # the alignment the 64 MB commit groups cut the second row group at 57,120 rows.
    database = tmp_path / "w.duckdb"
    with RawTableWriter(database, "1", memory_limit=MEMORY) as writer:
        for first in range(0, 260_000, 10_000):
            writer.write("patient", _many(first, 10_000))
    with duckdb.connect(str(database), read_only=True) as connection:
        groups = connection.execute(
            "select max(start + count) - min(start) "
            "from pragma_storage_info('raw_fhir.patient') where column_id = 0 "
            "group by row_group_id order by row_group_id"
        ).fetchall()
    assert [rows for (rows,) in groups] == [122_880, 122_880, 14_240]


def _count_joins(writer: RawTableWriter) -> list[str]:
    """Record each batch the version filter compares against stored rows with a join."""
    joined: list[str] = []
    join = writer.version_filter._keep_newer_than

    def counting(stored: str, batch: pa.Table) -> pa.Table:
        joined.append(stored)
        return join(stored, batch)

    writer.version_filter._keep_newer_than = counting  # type: ignore[method-assign]
    return joined


def test_a_table_empty_at_the_start_skips_the_join_for_ids_it_has_not_seen(
    tmp_path: Path,
) -> None:
    database = tmp_path / "w.duckdb"
    with RawTableWriter(database, "1", memory_limit=MEMORY) as writer:
        joined = _count_joins(writer)
        assert _merge(writer, _batch(_v("a", 1), _v("b", 1))) == 2
        assert _merge(writer, _batch(_v("c", 1))) == 1
        assert joined == []  # new ids, new table: nothing to compare with
        # An id seen in this run goes through the join: older versions and unchanged rows stop.
        assert _merge(writer, _batch(_v("a", 1), _v("d", 1))) == 1
        assert _merge(writer, _batch(_v("b", 3))) == 1
        assert _merge(writer, _batch(_v("b", 2))) == 0
        assert len(joined) == 3
    assert _stored(database) == {"a": "1", "b": "3", "c": "1", "d": "1"}
    with RawTableWriter(database, "2", memory_limit=MEMORY) as writer:
        joined = _count_joins(writer)
        assert _merge(writer, _batch(_v("e", 1))) == 1  # the table held rows: always joined
        assert _merge(writer, _batch(_v("a", 1))) == 0
        assert len(joined) == 2
    assert _stored(database) == {"a": "1", "b": "3", "c": "1", "d": "1", "e": "1"}
