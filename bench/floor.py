"""The floor of the load benchmark: DuckDB alone reading the NDJSON into one JSON column.

    python bench/floor.py DATA_DIR DATABASE

A fresh process, DuckDB's default settings (all cores, its own memory limit): what this
machine allows for landing the same files in a table, with no parsing, hashing, landing zone,
version filter or merge. fhir-elt's load is measured against it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb


def main() -> None:
    data, database = Path(sys.argv[1]), Path(sys.argv[2])
    with duckdb.connect(str(database)) as connection:
        connection.execute(
            "create table resources as select json as resource from read_ndjson_objects(?)",
            [str(data / "*.ndjson")],
        )
        (count,) = connection.execute("select count(*) from resources").fetchone()
    sys.stdout.write(f"{count} rows\n")


if __name__ == "__main__":
    main()
