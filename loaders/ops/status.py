"""``fhir-elt status``: freshness and lag per source and type, recent runs, open items.

Reads the DuckDB warehouse read-only and prints four tables:

- **freshness**: per source and resource type, rows held, the newest ``meta.lastUpdated``
  (how fresh the data is) and the newest ``fetched_at`` (lag: how long since data last
  arrived), with the status of the type's last REST sync when ``run_metrics`` has one;
- **runs**: the last runs from ``load_runs`` with their outcome, duration and counts;
- **open quarantine**: refused resources per source, type and reason that have not been loaded
  since (a resource whose id later merged counts as resolved; one without an id stays open);
- **drift**: types whose latest sync stopped on schema drift (``run_metrics.drift_findings``),
  and, once ``schema_drift`` exists, the paths the latest drifting run of each source found.

Open alerts are listed too when the dbt alert models have been built (schema ``alerts``).
Only names, counts and times are printed: no payload, no identifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from loaders.drift import SCHEMA_DRIFT
from loaders.exceptions import WarehouseError
from loaders.fhir import is_known_resource_type, table_name_for
from loaders.ops.tables import age, duration, render_table
from loaders.warehouse.connect import connect_warehouse
from loaders.warehouse.operational import (
    LANDING_MANIFEST,
    LOAD_RUNS,
    QUARANTINE,
    REQUEST_LOG,
    RUN_METRICS,
)
from loaders.warehouse.raw_tables import RAW_DATASET

_OPERATIONAL = {LOAD_RUNS, LANDING_MANIFEST, QUARANTINE, REQUEST_LOG, RUN_METRICS}
ALERTS_RELATION = "alerts.open_alerts"


@dataclass(slots=True)
class Status:
    """What ``status`` shows, as rows (tuples in table column order)."""

    warehouse: Path
    now: datetime
    freshness: list[tuple[Any, ...]] = field(default_factory=list)
    runs: list[tuple[Any, ...]] = field(default_factory=list)
    quarantine: list[tuple[Any, ...]] = field(default_factory=list)
    drift: list[tuple[Any, ...]] = field(default_factory=list)
    drift_paths: list[tuple[Any, ...]] | None = None
    alerts: list[tuple[Any, ...]] | None = None


def _tables(connection: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    rows = connection.execute(
        "select table_name from information_schema.tables where table_schema = ?", [schema]
    ).fetchall()
    return {name for (name,) in rows}


def _resource_tables(tables: set[str]) -> dict[str, str]:
    """Raw resource tables present, by table name -> resource type (CamelCase)."""
    found = {}
    for table in tables:
        if table in _OPERATIONAL or table.startswith("_dlt"):
            continue
        resource_type = "".join(part.capitalize() for part in table.split("_"))
        if is_known_resource_type(resource_type) and table_name_for(resource_type) == table:
            found[table] = resource_type
    return found


def _freshness(
    connection: duckdb.DuckDBPyConnection, resource_tables: dict[str, str], has_metrics: bool
) -> list[tuple[Any, ...]]:
    if not resource_tables:
        return []
    union = " union all ".join(
        f"select source_system, '{rtype}' as resource_type, count(*) as rows_held, "
        f"max(last_updated) as newest, max(fetched_at) as fetched "
        f"from {RAW_DATASET}.{table} group by source_system"
        for table, rtype in sorted(resource_tables.items())
    )
    last_sync = "null as last_sync_status, null as last_sync_at"
    join = ""
    if has_metrics:
        last_sync = "m.status as last_sync_status, m.started_at as last_sync_at"
        join = (
            f"left join (select source_system, resource_type, status, started_at from "
            f"{RAW_DATASET}.{RUN_METRICS} where status <> 'skipped' qualify row_number() over "
            "(partition by source_system, resource_type order by started_at desc) = 1) as m "
            "using (source_system, resource_type)"
        )
    return connection.execute(
        f"select f.source_system, f.resource_type, f.rows_held, f.newest, f.fetched, {last_sync} "
        f"from ({union}) as f {join} order by 1, 2"
    ).fetchall()


def _runs(connection: duckdb.DuckDBPyConnection, limit: int) -> list[tuple[Any, ...]]:
    return connection.execute(
        f"select run_id, source_system, command, status, started_at, finished_at, "
        f"resources_read, resources_merged, resources_quarantined "
        f"from {RAW_DATASET}.{LOAD_RUNS} order by started_at desc limit ?",
        [limit],
    ).fetchall()


def _open_quarantine(
    connection: duckdb.DuckDBPyConnection, resource_tables: dict[str, str]
) -> list[tuple[Any, ...]]:
    by_type = {rtype: table for table, rtype in resource_tables.items()}
    resolved = " or ".join(
        f"(q.resource_type = '{rtype}' and exists (select 1 from {RAW_DATASET}.{table} as r "
        "where r.source_system = q.source_system and r.id = q.resource_id "
        "and r.fetched_at > q.quarantined_at))"
        for rtype, table in sorted(by_type.items())
    )
    where = f"where not ({resolved})" if resolved else ""
    return connection.execute(
        f"select q.source_system, coalesce(q.resource_type, '(unparsed)'), q.reason, count(*), "
        f"max(q.quarantined_at) from {RAW_DATASET}.{QUARANTINE} as q {where} "
        "group by all order by 1, 2, 3"
    ).fetchall()


def _drift(connection: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return connection.execute(
        f"select source_system, resource_type, run_id, started_at, drift_findings from ("
        f"select *, row_number() over (partition by source_system, resource_type "
        f"order by started_at desc) as latest from {RAW_DATASET}.{RUN_METRICS} "
        "where status <> 'skipped') where latest = 1 and drift_findings > 0 order by 1, 2"
    ).fetchall()


def _drift_paths(connection: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """Per source, the findings of its latest run that found schema drift.

    Latest by when the findings were seen: run ids sort by the second they started in, then by
    a random suffix, so two runs of one second do not sort by time.
    """
    return connection.execute(
        f"with latest as (select source_system, arg_max(run_id, first_seen_at) as run_id "
        f"from {RAW_DATASET}.{SCHEMA_DRIFT} group by source_system) "
        f"select drift.source_system, drift.resource_type, drift.json_path, drift.observed_kind, "
        f"drift.expected_kind, drift.count, drift.policy, drift.first_seen_at "
        f"from {RAW_DATASET}.{SCHEMA_DRIFT} as drift join latest "
        "on latest.source_system = drift.source_system and latest.run_id = drift.run_id "
        "order by 1, 2, 3, 4"
    ).fetchall()


def _alerts(connection: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]] | None:
    if "open_alerts" not in _tables(connection, "alerts"):
        return None
    try:
        return connection.execute(
            f"select alert_kind, source_system, resource_type, message from {ALERTS_RELATION} "
            "order by 1, 2, 3"
        ).fetchall()
    except duckdb.Error:  # views built against another layout: rebuilt by the next dbt build
        return None


def collect_status(duckdb_path: Path, *, runs: int = 10, now: datetime | None = None) -> Status:
    """Read everything ``status`` shows from the warehouse (read-only).

    Raises:
        WarehouseError: The file is missing or another process holds it for writing.
    """
    if not duckdb_path.exists():
        raise WarehouseError(
            f"no warehouse at {duckdb_path}: run a load first, or pass --warehouse"
        )
    status = Status(duckdb_path, now or datetime.now(UTC))
    try:
        with connect_warehouse(duckdb_path, read_only=True) as connection:
            tables = _tables(connection, RAW_DATASET)
            resource_tables = _resource_tables(tables)
            status.freshness = _freshness(connection, resource_tables, RUN_METRICS in tables)
            if LOAD_RUNS in tables:
                status.runs = _runs(connection, runs)
            if QUARANTINE in tables:
                status.quarantine = _open_quarantine(connection, resource_tables)
            if RUN_METRICS in tables:
                status.drift = _drift(connection)
            if SCHEMA_DRIFT in tables:
                status.drift_paths = _drift_paths(connection)
            status.alerts = _alerts(connection)
    except duckdb.Error as error:
        raise WarehouseError(
            f"cannot read {duckdb_path} ({type(error).__name__}); is a load writing to it?"
        ) from None
    return status


def _drift_kind(observed: str, expected: str) -> str:
    if expected == "unknown":
        return f"{observed}, not in R4"
    return f"{observed} (expected {expected})"


def format_status(status: Status) -> str:
    """The status as readable text tables."""
    now = status.now
    out = [f"fhir-elt status   warehouse {status.warehouse}   now {now:%Y-%m-%d %H:%M} UTC", ""]
    out.append("freshness and lag per source and resource type")
    if status.freshness:
        rows: Sequence[Sequence[object]] = [
            (
                source,
                rtype,
                held,
                age(newest, now),
                age(fetched, now),
                sync_status or "-",
                age(sync_at, now),
            )
            for source, rtype, held, newest, fetched, sync_status, sync_at in status.freshness
        ]
        out.append(
            render_table(
                ("source", "type", "rows", "freshness", "lag", "last sync", "sync age"), rows
            )
        )
    else:
        out.append("  (no resources loaded yet)")
    out += ["", f"last {len(status.runs)} runs"]
    if status.runs:
        rows = [
            (
                run[0],
                run[1],
                run[2],
                run[3],
                run[4],
                duration(run[5] - run[4]) if run[5] else "running?",
                run[6],
                run[7],
                run[8],
            )
            for run in status.runs
        ]
        out.append(
            render_table(
                (
                    "run",
                    "source",
                    "command",
                    "outcome",
                    "started (UTC)",
                    "took",
                    "read",
                    "merged",
                    "quarantined",
                ),
                rows,
            )
        )
    else:
        out.append("  (no runs recorded)")
    out += ["", "open quarantine (not loaded since)"]
    if status.quarantine:
        rows = [
            (source, rtype, reason, count, age(last, now))
            for source, rtype, reason, count, last in status.quarantine
        ]
        out.append(render_table(("source", "type", "reason", "open", "latest"), rows))
    else:
        out.append("  none")
    out += ["", "schema drift (latest sync stopped)"]
    if status.drift:
        rows = [
            (source, rtype, run_id, age(started, now), findings)
            for source, rtype, run_id, started, findings in status.drift
        ]
        out.append(render_table(("source", "type", "run", "age", "findings"), rows))
    else:
        out.append("  none")
    if status.drift_paths is not None:
        out += ["", "schema drift found (latest drifting run per source; raw_fhir.schema_drift)"]
        rows = [
            (source, rtype, path, _drift_kind(observed, expected), count, policy, age(at, now))
            for source, rtype, path, observed, expected, count, policy, at in status.drift_paths
        ]
        headers = ("source", "type", "path", "kind", "resources", "policy", "age")
        out.append(render_table(headers, rows) if rows else "  none")
    if status.alerts is not None:
        out += ["", "open alerts (dbt models in schema alerts, as of their last build)"]
        if status.alerts:
            out.append(
                render_table(
                    ("alert", "source", "type", "message"), [tuple(a) for a in status.alerts]
                )
            )
        else:
            out.append("  none")
    return "\n".join(out)
