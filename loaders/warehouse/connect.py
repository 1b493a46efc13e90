"""Open the DuckDB warehouse file, turning "another process holds it" into our own error.

DuckDB lets one process at a time open a database file for writing, and while it does, no
other process can open it at all (not even read-only). The second process gets an
``IOException`` "Could not set lock on file ...: Conflicting lock is held in <program>
(PID n)". :func:`connect_warehouse` is the one place that recognises it and raises
:class:`~loaders.exceptions.WarehouseLockedError` naming the file, the holder's PID and what to
do; every other DuckDB error passes through unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb

from loaders.exceptions import WarehouseLockedError

_LOCK_CONFLICT = re.compile(r"could not set lock on file|conflicting lock is held", re.IGNORECASE)
_HOLDER_PID = re.compile(r"\(PID (\d+)\)")


def is_lock_conflict(error: BaseException) -> bool:
    """Whether ``error`` is DuckDB refusing a file another process holds open."""
    return isinstance(error, duckdb.Error) and bool(_LOCK_CONFLICT.search(str(error)))


def locked_error(database: Path, error: BaseException) -> WarehouseLockedError:
    """Our error for a lock conflict on ``database``: the file, the holder's PID, what to do.

    Only the PID is taken from DuckDB's text (not the holder's program path).
    """
    match = _HOLDER_PID.search(str(error))
    holder = f" (PID {match.group(1)})" if match else ""
    return WarehouseLockedError(
        f"the warehouse {database} is locked: another process{holder} holds it open, and DuckDB "
        "lets only one process use a warehouse file at a time. Let that process finish (or "
        "stop it), then run the same command again; it resumes from the last committed "
        "checkpoint"
    )


def connect_warehouse(
    database: Path, *, read_only: bool = False, config: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` on the warehouse file.

    Args:
        database: The DuckDB warehouse file.
        read_only: Open it read-only.
        config: DuckDB settings (memory limit, ...).

    Raises:
        WarehouseLockedError: Another process holds the file open.
        duckdb.Error: Any other failure to open it.
    """
    try:
        return duckdb.connect(str(database), read_only=read_only, config=config or {})
    except duckdb.Error as error:
        if is_lock_conflict(error):
            raise locked_error(database, error) from error
        raise
