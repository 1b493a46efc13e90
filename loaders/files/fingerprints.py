"""Which input files were already loaded, by content, so the same file is not read twice.

Every file a run reads gets a row in ``raw_fhir.loaded_files``: its path, size, sha256, how
many resources it held and how many were refused. A later run of the same source system skips
a file whose bytes (sha256) were loaded before by a run that succeeded, and refused nothing of
it: merging it again could change nothing (the merge is idempotent and never lets an older
version win), and its lines are already in the landing zone byte for byte. Its resources are
counted as read and unchanged. Files that had refused lines are read again, so their
quarantine rows and exit status are the same every time.

Only files whose size matches a loaded file are hashed before reading; the others are hashed
while they are read (see :func:`loaders.files.reader.iter_file_items`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from loaders.exceptions import WarehouseError
from loaders.files.discover import InputFile
from loaders.warehouse.connect import connect_warehouse
from loaders.warehouse.raw_tables import RAW_DATASET

logger = logging.getLogger(__name__)

LOADED_FILES = "loaded_files"
_TIMESTAMP = pa.timestamp("us", tz="UTC")
LOADED_FILES_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("resources_read", pa.int64(), nullable=False),
        pa.field("resources_quarantined", pa.int64(), nullable=False),
        pa.field("skipped", pa.bool_(), nullable=False),
        pa.field("read_at", _TIMESTAMP, nullable=False),
    ]
)
_SUCCEEDED = ("succeeded", "succeeded_with_rejects")
_HASH_BLOCK = 8 * 1024 * 1024


@dataclass(slots=True)
class LoadedFile:
    """One input file of a run; the columns of ``loaded_files``."""

    run_id: str
    source_system: str
    source_file: str
    size_bytes: int
    sha256: str
    resources_read: int
    resources_quarantined: int
    skipped: bool
    read_at: datetime


def loaded_files_table(rows: Sequence[LoadedFile]) -> pa.Table:
    """The rows for ``loaded_files`` (possibly none) as an arrow table."""
    return pa.Table.from_pylist([asdict(row) for row in rows], LOADED_FILES_SCHEMA)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes as stored."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class AlreadyLoaded:
    """A file whose content was loaded before: skip it, counting its resources as unchanged."""

    source: InputFile
    size_bytes: int
    sha256: str
    resources: int


def find_already_loaded(
    database: Path, source_system: str, files: Sequence[InputFile], dataset: str = RAW_DATASET
) -> dict[Path, AlreadyLoaded]:
    """The files among ``files`` whose exact content a successful run loaded before.

    Raises:
        WarehouseError: The warehouse exists but cannot be read.
    """
    if not database.exists() or not files:
        return {}
    sizes = {source.path: source.path.stat().st_size for source in files}
    try:
        with connect_warehouse(database, read_only=True) as connection:
            tables = {
                name
                for (name,) in connection.execute(
                    "select table_name from information_schema.tables where table_schema = ?",
                    [dataset],
                ).fetchall()
            }
            if not {LOADED_FILES, "load_runs"} <= tables:
                return {}
            rows = connection.execute(
                f"""
                select distinct files.size_bytes, files.sha256, files.resources_read
                from "{dataset}"."{LOADED_FILES}" as files
                inner join "{dataset}".load_runs as runs on runs.run_id = files.run_id
                where files.source_system = ?
                    and files.resources_quarantined = 0
                    and runs.status in {_SUCCEEDED}
                    and list_contains(?, files.size_bytes)
                """,
                [source_system, sorted(set(sizes.values()))],
            ).fetchall()
    except duckdb.Error as error:
        raise WarehouseError(
            f"cannot read which files were loaded from {database}: {type(error).__name__}"
        ) from error
    known: dict[tuple[int, str], int] = {(size, sha): count for size, sha, count in rows}
    candidate_sizes = {size for size, _ in known}
    candidates = [source for source in files if sizes[source.path] in candidate_sizes]
    # hashlib releases the GIL while it hashes, so the files are hashed one per core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        digests = list(pool.map(file_sha256, [source.path for source in candidates]))
    found: dict[Path, AlreadyLoaded] = {}
    for source, sha256 in zip(candidates, digests, strict=True):
        size = sizes[source.path]
        resources = known.get((size, sha256))
        if resources is not None:
            found[source.path] = AlreadyLoaded(source, size, sha256, resources)
    return found
