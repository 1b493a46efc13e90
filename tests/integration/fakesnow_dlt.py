"""Test-only: what fakesnow (0.12) lacks to run dlt's snowflake destination, patched in-process.

dlt's snowflake destination runs unchanged; fakesnow's cursor is taught four things real
Snowflake does (each found by running a dlt load on fakesnow and reading what failed):

1. ``execute(..., num_statements=0)`` with several statements (dlt's DDL and merge SQL):
   fakesnow parses one statement; here the text is split and run statement by statement.
2. ``cursor.description`` after DDL: fakesnow runs ``DESCRIBE CREATE TABLE ...`` and fails;
   here it is None, as for a statement without a result.
3. ``PUT 'file://...' '@"SCHEMA"."%TABLE"/"load_id"'`` and ``COPY ... FROM '@...'``: fakesnow
   wants an unquoted stage (``@SCHEMA.%TABLE/load_id``); the quotes are removed.
4. ``COPY INTO ... FILE_FORMAT = (TYPE = 'JSON') MATCH_BY_COLUMN_NAME='CASE_INSENSITIVE'``
   (dlt's JSONL load): fakesnow loads a JSON file into one VARIANT column only; here each
   table column is read from the staged file's object by its (lower-case) key, a VARIANT
   column keeping the JSON value (so an object stays an object). Parquet copies drop the
   options fakesnow does not parse (``BINARY_AS_TEXT``, ``USE_LOGICAL_TYPE``, ``BINARY_FORMAT``)
   and unquote ``MATCH_BY_COLUMN_NAME``.

Use ``fakesnow.patch(create_schema_on_connect=False)`` too: dlt connects with a quoted,
qualified schema that fakesnow would otherwise try to create under that literal name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlglot
from fakesnow.cursor import FakeSnowflakeCursor

_PUT = re.compile(r"\s*PUT ('[^']*') '(@[^']*)'(.*)", re.S)
_COPY_JSON = re.compile(
    r"""\s*COPY INTO "([^"]+)"\."([^"]+)"\s+FROM (\S+)\s+"""
    r"""FILE_FORMAT = \(TYPE = 'JSON'\)\s+MATCH_BY_COLUMN_NAME='CASE_INSENSITIVE'""",
    re.S,
)
_UNPARSED_OPTIONS = re.compile(
    r",\s*(BINARY_FORMAT|BINARY_AS_TEXT|USE_LOGICAL_TYPE)\s*=\s*('[^']*'|\w+)"
)


@contextmanager
def dlt_on_fakesnow() -> Iterator[None]:
    """Patch fakesnow's cursor for dlt's snowflake destination while the block runs."""
    original_execute = FakeSnowflakeCursor.execute
    original_description = FakeSnowflakeCursor.description
    staged: dict[str, str] = {}  # stage path -> local file, from PUT

    def run_one(cursor: FakeSnowflakeCursor, command: str, params: Any, *args: Any, **kw: Any):
        put = _PUT.match(command)
        if put:
            local, stage, rest = put.groups()
            stage = stage.replace('"', "")
            path = local.strip("'").removeprefix("file://")
            staged[f"{stage}/{path.rsplit('/', 1)[1]}"] = path
            command = f"PUT {local} {stage}{rest}"
        if command.lstrip().upper().startswith("COPY INTO"):
            command = re.sub(
                r"FROM '(@[^']*)'", lambda m: "FROM " + m.group(1).replace('"', ""), command
            )
            command = _UNPARSED_OPTIONS.sub("", command)
            copy_json = _COPY_JSON.match(command)
            if copy_json:
                schema, table, stage = copy_json.groups()
                _copy_json(cursor, schema, table, staged[stage])
                return original_execute(cursor, "select 1")
            command = command.replace(
                "MATCH_BY_COLUMN_NAME='CASE_INSENSITIVE'", "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE"
            )
        return original_execute(cursor, command, params, *args, **kw)

    def execute(self: FakeSnowflakeCursor, command: str, params: Any = None, *args: Any, **kw: Any):
        kw.pop("num_statements", None)
        statements = [command]
        if ";" in command.strip().rstrip(";"):
            parsed = [s for s in sqlglot.parse(command, read="snowflake") if s is not None]
            if len(parsed) > 1:
                statements = [s.sql(dialect="snowflake") for s in parsed]
        for statement in statements:
            run_one(self, statement, params, *args, **kw)
        return self

    def description(self: FakeSnowflakeCursor) -> Any:
        try:
            return original_description.fget(self)  # type: ignore[attr-defined]
        except Exception:
            return None

    FakeSnowflakeCursor.execute = execute  # type: ignore[method-assign]
    FakeSnowflakeCursor.description = property(description)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        FakeSnowflakeCursor.execute = original_execute  # type: ignore[method-assign]
        FakeSnowflakeCursor.description = original_description  # type: ignore[method-assign]


def _copy_json(cursor: FakeSnowflakeCursor, schema: str, table: str, local: str) -> None:
    duck = cursor._duck_conn
    database = cursor._conn.database
    columns = duck.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [database, schema, table],
    ).fetchall()
    names = ", ".join(f'"{name}"' for name, _ in columns)
    values = ", ".join(
        f"json -> '{name.lower()}'" if kind == "JSON" else f"json ->> '{name.lower()}'"
        for name, kind in columns
    )
    duck.execute(
        f'insert into {database}."{schema}"."{table}" ({names}) '
        f"select {values} from read_json_objects(?)",
        [local],
    )
