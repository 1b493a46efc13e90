"""``fhir-elt summary``: what the warehouse holds and how the last dbt invocation went.

Reads only counts and test outcomes: no resource content is printed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb

from loaders.warehouse.connect import connect_warehouse
from loaders.warehouse.raw_tables import RAW_DATASET

_MART_SCHEMA = "marts"
# A raw resource table has this column; operational tables (load_runs, request_log, ...) do not.
_RESOURCE_TABLE_COLUMN = "content_hash"


def _table_counts(connection: duckdb.DuckDBPyConnection, schema: str) -> list[tuple[str, int]]:
    tables = connection.execute(
        "select table_name from information_schema.tables "
        "where table_schema = ? and table_name not like '\\_dlt%' escape '\\' order by 1",
        [schema],
    ).fetchall()
    return [
        (name, connection.execute(f'select count(*) from "{schema}"."{name}"').fetchone()[0])
        for (name,) in tables
    ]


def _resource_tables(connection: duckdb.DuckDBPyConnection) -> set[str]:
    rows = connection.execute(
        "select table_name from information_schema.columns "
        "where table_schema = ? and column_name = ?",
        [RAW_DATASET, _RESOURCE_TABLE_COLUMN],
    ).fetchall()
    return {name for (name,) in rows}


def _dbt_results(target_dir: Path) -> Counter[str]:
    # `make demo` keeps the build's results aside: `dbt docs generate` overwrites run_results.
    results_file = target_dir / "last_build_results.json"
    if not results_file.exists():
        results_file = target_dir / "run_results.json"
    if not results_file.exists():
        return Counter()
    results = json.loads(results_file.read_text())["results"]
    return Counter(f"{result['unique_id'].split('.')[0]} {result['status']}" for result in results)


def format_summary(duckdb_path: Path, target_dir: Path) -> str:
    """Raw rows per resource type, rows per mart, dbt outcomes and where to look next."""
    lines: list[str] = []
    out = lines.append
    if not duckdb_path.exists():
        return f"no warehouse at {duckdb_path}: run `make demo` or `fhir-elt load files PATH`"
    with connect_warehouse(duckdb_path, read_only=True) as connection:
        raw_tables = _table_counts(connection, RAW_DATASET)
        resource_tables = _resource_tables(connection)
        marts = _table_counts(connection, _MART_SCHEMA)
        last_run = None
        if any(name == "load_runs" for name, _ in raw_tables):
            last_run = connection.execute(
                f"select run_id, status, resources_read, resources_merged, resources_quarantined "
                f"from {RAW_DATASET}.load_runs order by started_at desc limit 1"
            ).fetchone()
    raw = [row for row in raw_tables if row[0] in resource_tables]
    out("\n== fhir-elt summary ==")
    out(f"warehouse: {duckdb_path.resolve()}")
    if last_run:
        run_id, status, read, merged, quarantined = last_run
        out(
            f"last load: {run_id} {status}: {read:,} read, {merged:,} new or changed, "
            f"{quarantined:,} quarantined"
        )
    out(f"\nraw resources ({RAW_DATASET}):")
    for name, count in raw:
        out(f"  {name:<24}{count:>10,}")
    out(f"\nmarts ({_MART_SCHEMA}):")
    for name, count in marts or [("(none built yet: run dbt build)", 0)]:
        out(f"  {name:<40}{count:>10,} rows")
    outcomes = _dbt_results(target_dir)
    if outcomes:
        out("\nlast dbt invocation:")
        for key, count in sorted(outcomes.items()):
            out(f"  {key:<24}{count:>6}")
    docs = target_dir / "index.html"
    if docs.exists():
        out(f"\ndocs: {docs.resolve()}  (or: DBT_PROFILES_DIR=profiles .venv/bin/dbt docs serve)")
    out(
        "\nnext:\n"
        "  DBT_PROFILES_DIR=profiles .venv/bin/dbt docs serve       browse the models and tests\n"
        "  .venv/bin/fhir-elt generate --patients 200 --defects 0.05 --out /tmp/fhir-defects\n"
        "  .venv/bin/fhir-elt load files /tmp/fhir-defects --source-system defects\n"
        "  DBT_PROFILES_DIR=profiles .venv/bin/dbt build           see the data tests catch them\n"
        "  make test                                                  the whole test suite"
    )
    return "\n".join(lines)
