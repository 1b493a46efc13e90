"""Copy the analytic schemas of the DuckDB warehouse into a new file that carries no PHI.

DuckDB has no roles, so the Snowflake story (only a PHI role reads ``restricted``) cannot hold
inside one warehouse file: whoever can open the file reads every schema. Sharing therefore
means a *new* file holding only analytic schemas (``fhir-elt share``; README "PHI and the
restricted schema"):

* Only schemas on :data:`SHAREABLE_SCHEMAS` can be asked for (default: ``marts``). The PHI
  schemas (:data:`PHI_SCHEMAS`: raw resources, staging, restricted identifiers, stored test
  failures) are refused by name, and so is any schema not on the list (deny by default).
* Before anything is written, every column of every relation to be copied is checked against
  the PHI column names: a fixed list (:data:`PHI_COLUMN_NAMES`) plus every column marked
  ``meta.contains_phi`` in dbt's ``target/manifest.json`` when it exists. A match refuses the
  whole share, naming the relation and column (never a value).
* Tables and views are copied as tables (``create table ... as select *``) through DuckDB
  ``ATTACH``; the new file is written under a temporary name and renamed only once every row
  count matches the source's, so a failed share leaves no file behind.

The source warehouse is opened read-only and never changed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from loaders.exceptions import ConfigError, WarehouseError
from loaders.warehouse.connect import is_lock_conflict, locked_error

log = logging.getLogger(__name__)

# Schemas built from data with no direct identifier (patients appear as keyed hashes only;
# dbt's assert_phi_only_in_restricted_models test fences them).
SHAREABLE_SCHEMAS: tuple[str, ...] = (
    "marts",
    "canonical",
    "snapshots",
    "alerts",
    "operations",
    "terminology",
)
DEFAULT_SHARED_SCHEMAS: tuple[str, ...] = ("marts",)

# Schemas that hold PHI, with why: asking for one is refused.
PHI_SCHEMAS: dict[str, str] = {
    "raw_fhir": "whole FHIR resources as delivered (names, identifiers, addresses)",
    "staging": "parsed resources, direct identifiers included",
    "restricted": "the re-identification map and direct identifiers",
    "dq_failures": "stored failing rows of data tests, which may show identifiers",
}

# Column names that are PHI wherever they appear (the restricted and staging models' PHI
# columns and the raw `resource` document); the manifest adds every contains_phi column.
PHI_COLUMN_NAMES: frozenset[str] = frozenset(
    {
        "resource",
        "patient_id",
        "mrn",
        "ssn",
        "family_name",
        "given_names",
        "birth_date",
        "address_line",
        "address_city",
        "address_postal_code",
        "subscriber_member_id",
        "dependent_number",
        "resource_id",
        "resource_source_key",
    }
)

_TEMPORARY_SUFFIX = ".sharing"
_SOURCE = "warehouse_source"


class SharePhiError(ConfigError):
    """A share was refused: a PHI or unknown schema was asked for, or a column is PHI."""


@dataclass(frozen=True)
class ShareReport:
    """What ``share`` wrote: the file and the row count of each copied relation."""

    out: Path
    schemas: tuple[str, ...]
    rows_by_table: dict[str, int] = field(default_factory=dict)


def phi_column_names(manifest_path: Path | None) -> frozenset[str]:
    """The fixed PHI column names plus every column marked ``contains_phi`` in dbt's manifest.

    Args:
        manifest_path: dbt's ``manifest.json``; ignored when ``None`` or missing.

    Raises:
        ConfigError: The manifest exists but is not readable JSON.
    """
    names = set(PHI_COLUMN_NAMES)
    if manifest_path is None or not manifest_path.is_file():
        return frozenset(names)
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"dbt manifest {manifest_path} is not readable JSON ({type(error).__name__})"
        ) from error
    resources = [*manifest.get("nodes", {}).values(), *manifest.get("sources", {}).values()]
    for resource in resources:
        for column in (resource.get("columns") or {}).values():
            meta = {**(column.get("meta") or {}), **(column.get("config") or {}).get("meta", {})}
            if meta.get("contains_phi"):
                names.add(str(column["name"]).lower())
    return frozenset(names)


def check_schemas(schemas: Iterable[str]) -> tuple[str, ...]:
    """The requested schema names, lower-cased, deduplicated, in order.

    Raises:
        SharePhiError: A schema holds PHI or is not on :data:`SHAREABLE_SCHEMAS`.
    """
    checked: list[str] = []
    for requested in schemas:
        schema = requested.strip().lower()
        if schema in PHI_SCHEMAS:
            raise SharePhiError(
                f"schema {schema} holds PHI ({PHI_SCHEMAS[schema]}) and is never shared"
            )
        if schema not in SHAREABLE_SCHEMAS:
            raise SharePhiError(
                f"schema {schema} is not an analytic schema; shareable schemas: "
                + ", ".join(SHAREABLE_SCHEMAS)
            )
        if schema not in checked:
            checked.append(schema)
    if not checked:
        raise SharePhiError("no schema to share")
    return tuple(checked)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _relations(
    connection: duckdb.DuckDBPyConnection, catalog: str, schema: str
) -> list[tuple[str, str]]:
    """(table name, table type) of every table and view in ``catalog.schema``."""
    return connection.execute(
        "select table_name, table_type from information_schema.tables "
        "where table_catalog = ? and table_schema = ? order by table_name",
        [catalog, schema],
    ).fetchall()


def _phi_columns(
    connection: duckdb.DuckDBPyConnection,
    catalog: str,
    schema: str,
    phi_names: frozenset[str],
) -> list[str]:
    """``table.column`` of each column in ``catalog.schema`` whose name is PHI."""
    rows = connection.execute(
        "select table_name, column_name from information_schema.columns "
        "where table_catalog = ? and table_schema = ? order by table_name, ordinal_position",
        [catalog, schema],
    ).fetchall()
    return [f"{table}.{column}" for table, column in rows if str(column).lower() in phi_names]


def _count(connection: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> int:
    row = connection.execute(
        f"select count(*) from {_quote(catalog)}.{_quote(schema)}.{_quote(table)}"
    ).fetchone()
    return int(row[0]) if row else 0


def share_warehouse(
    warehouse: Path,
    out: Path,
    schemas: Sequence[str] = DEFAULT_SHARED_SCHEMAS,
    manifest_path: Path | None = None,
) -> ShareReport:
    """Write ``out``: a new DuckDB file with only the analytic ``schemas`` of ``warehouse``.

    Args:
        warehouse: The DuckDB warehouse file (opened read-only).
        out: The file to create; it must not exist.
        schemas: Schemas to copy, from :data:`SHAREABLE_SCHEMAS` (default ``marts``).
        manifest_path: dbt's ``manifest.json``, for the PHI column names it marks.

    Raises:
        SharePhiError: A schema holds PHI or is unknown, or a column to copy is PHI.
        ConfigError: ``out`` exists, is the warehouse itself, is named like a schema it would
            hold, or the warehouse is missing.
        WarehouseLockedError: Another process holds the warehouse open.
        WarehouseError: A schema is missing from the warehouse, or a copy lost rows.
    """
    wanted = check_schemas(schemas)
    phi_names = phi_column_names(manifest_path)
    if not warehouse.is_file():
        raise ConfigError(f"warehouse {warehouse} does not exist (run a load and dbt build first)")
    if out.exists():
        raise ConfigError(f"{out} already exists; share writes a new file, choose another path")
    if out.resolve() == warehouse.resolve():
        raise ConfigError(f"{out} is the warehouse itself; share writes a new file")
    if out.stem.lower() in wanted:
        raise ConfigError(
            f"{out}: name the file after no schema it holds (DuckDB names the database after "
            f"the file, and `{out.stem}.<table>` would be ambiguous)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + _TEMPORARY_SUFFIX)
    temporary.unlink(missing_ok=True)  # left by a share that was killed

    connection = duckdb.connect(":memory:")
    try:
        _attach_source(connection, warehouse)
        report = _copy(connection, temporary, out, wanted, phi_names, warehouse)
    except BaseException:
        connection.close()
        temporary.unlink(missing_ok=True)
        temporary.with_name(temporary.name + ".wal").unlink(missing_ok=True)
        raise
    connection.close()
    os.replace(temporary, out)
    return report


def _attach_source(connection: duckdb.DuckDBPyConnection, warehouse: Path) -> None:
    """Attach ``warehouse`` read-only as catalog :data:`_SOURCE`."""
    try:
        connection.execute(f"attach {_literal(str(warehouse))} as {_SOURCE} (read_only)")
    except duckdb.Error as error:
        if is_lock_conflict(error):
            raise locked_error(warehouse, error) from error
        raise WarehouseError(
            f"cannot open the warehouse {warehouse} read-only ({type(error).__name__})"
        ) from error


def _copy(
    connection: duckdb.DuckDBPyConnection,
    temporary: Path,
    out: Path,
    schemas: tuple[str, ...],
    phi_names: frozenset[str],
    warehouse: Path,
) -> ShareReport:
    source = _SOURCE
    plan: dict[str, list[tuple[str, str]]] = {}
    offending: list[str] = []
    for schema in schemas:
        relations = _relations(connection, source, schema)
        if not relations:
            raise WarehouseError(
                f"schema {schema} has no tables in {warehouse} (run dbt build first)"
            )
        plan[schema] = relations
        offending += [
            f"{schema}.{name}" for name in _phi_columns(connection, source, schema, phi_names)
        ]
    if offending:
        raise SharePhiError(
            "refusing to share: PHI column(s) " + ", ".join(offending) + " (a column name "
            "marked contains_phi); move them to the restricted schema or leave the schema out"
        )

    connection.execute(f"attach {_literal(str(temporary))} as shared")
    rows_by_table: dict[str, int] = {}
    try:
        for schema, relations in plan.items():
            connection.execute(f"create schema shared.{_quote(schema)}")
            for table, _kind in relations:
                target = f"shared.{_quote(schema)}.{_quote(table)}"
                connection.execute(
                    f"create table {target} as select * from "
                    f"{_quote(source)}.{_quote(schema)}.{_quote(table)}"
                )
                copied = _count(connection, "shared", schema, table)
                expected = _count(connection, source, schema, table)
                if copied != expected:
                    raise WarehouseError(
                        f"copy of {schema}.{table} holds {copied} rows, the warehouse {expected}"
                    )
                rows_by_table[f"{schema}.{table}"] = copied
                log.debug("shared %s.%s (%d rows)", schema, table, copied)
        connection.execute("checkpoint shared")
    finally:
        connection.execute("detach shared")
    return ShareReport(out=out, schemas=schemas, rows_by_table=rows_by_table)


def describe(report: ShareReport) -> list[str]:
    """Lines ``fhir-elt share`` prints: the file, then rows per copied relation."""
    lines = [
        f"shared {len(report.rows_by_table)} table(s) from schema(s) "
        f"{', '.join(report.schemas)} into {report.out}"
    ]
    lines += [f"  {name:<48}{rows:>12,}" for name, rows in sorted(report.rows_by_table.items())]
    return lines


def run_share(args: Any) -> int:
    """Handler of ``fhir-elt share`` (see :func:`add_parser`)."""
    from loaders.settings import LoadSettings

    settings = LoadSettings.resolve(duckdb_path=args.warehouse)
    report = share_warehouse(
        settings.duckdb_path,
        args.out,
        schemas=args.include or DEFAULT_SHARED_SCHEMAS,
        manifest_path=args.manifest,
    )
    sys.stdout.write("\n".join(describe(report)) + "\n")
    return 0


def add_parser(commands: Any) -> None:
    """Add ``share`` to the top-level commands."""
    share = commands.add_parser(
        "share",
        help="write a new DuckDB file with only the analytic schemas (no PHI) of the warehouse",
    )
    share.add_argument("--out", type=Path, required=True, help="new DuckDB file to write")
    share.add_argument(
        "--include",
        nargs="+",
        metavar="SCHEMA",
        default=None,
        help="schemas to copy (default: marts); one of "
        + ", ".join(SHAREABLE_SCHEMAS)
        + "; raw_fhir, staging, restricted and dq_failures are refused",
    )
    share.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    share.add_argument(
        "--manifest",
        type=Path,
        default=Path("target/manifest.json"),
        help="dbt manifest whose contains_phi columns are refused too (default: "
        "target/manifest.json, skipped when missing)",
    )
