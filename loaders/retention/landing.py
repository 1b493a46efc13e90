"""Landing retention: which runs' pages may be deleted, and deleting them.

A run's pages are deleted together with its manifest (``_manifests/<run_id>.ndjson``), all or
nothing, so the landing zone stays a set of whole runs that replay can read. A run is deleted
only when every one of these holds:

- all its pages were written more than ``days`` days before ``now``;
- ``load_runs`` records it as ``succeeded`` or ``succeeded_with_rejects`` (its pages merged);
- it is not the newest run of its source system for any of its page types;
- no current raw row comes from one of its pages (``landing_file``): the pages holding the
  warehouse's current versions are kept, so a replay still rebuilds the current raw tables and
  every raw row still traces to a file whose sha256 can be checked;
- none of its ``_quarantine`` pages holds a quarantined resource that is still open.

``landing_manifest`` rows are kept (one small row per page: what the page was and its sha256).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from loaders.exceptions import LandingError, WarehouseError
from loaders.landing import LandingPage, read_manifest
from loaders.landing.zone import QUARANTINE
from loaders.quarantine.records import OPEN, read_entries
from loaders.warehouse.connect import connect_warehouse
from loaders.warehouse.operational import LOAD_RUNS
from loaders.warehouse.raw_tables import RAW_DATASET

logger = logging.getLogger(__name__)

MANIFESTS = "_manifests"
MERGED_STATUSES = frozenset({"succeeded", "succeeded_with_rejects"})

# Why a run is kept, in the order the rules are checked.
TOO_RECENT = "too_recent"
NOT_SUCCEEDED = "not_succeeded"
NEWEST_OF_TYPE = "newest_of_type"
CURRENT_ROWS = "holds_current_rows"
OPEN_QUARANTINE = "open_quarantine"


@dataclass(frozen=True, slots=True)
class LandedRun:
    """One run's manifest and pages."""

    source_system: str
    run_id: str
    manifest: Path
    pages: tuple[LandingPage, ...]

    @property
    def written_at(self) -> datetime:
        """When its last page was written."""
        return max(page.created_at for page in self.pages)

    @property
    def size_bytes(self) -> int:
        """Bytes of its pages as written."""
        return sum(page.size_bytes for page in self.pages)


@dataclass(slots=True)
class LandingPlan:
    """What a landing retention pass deletes and keeps.

    Attributes:
        cutoff: Runs whose pages were all written before this may go.
        deletable: The runs to delete.
        kept: Kept run ids per reason (:data:`TOO_RECENT`, ...; the first reason that applies).
    """

    cutoff: datetime
    deletable: list[LandedRun] = field(default_factory=list)
    kept: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def pages(self) -> int:
        """Pages to delete."""
        return sum(len(run.pages) for run in self.deletable)

    @property
    def size_bytes(self) -> int:
        """Bytes to delete."""
        return sum(run.size_bytes for run in self.deletable)


@dataclass(frozen=True, slots=True)
class _WarehouseFacts:
    run_status: dict[str, str]
    current_files: frozenset[str]
    open_quarantine_files: frozenset[str]


def landed_runs(root: Path) -> list[LandedRun]:
    """Every run with a manifest under ``root``, by source system and run id.

    Raises:
        LandingError: A manifest cannot be read.
    """
    runs = []
    if not root.exists():
        return runs
    for manifest in sorted(root.glob(f"*/{MANIFESTS}/*.ndjson")):
        try:
            pages = tuple(read_manifest(manifest))
        except (OSError, ValueError, TypeError) as error:
            raise LandingError(
                f"cannot read landing manifest {manifest}: {type(error).__name__}"
            ) from error
        if pages:
            runs.append(LandedRun(manifest.parent.parent.name, manifest.stem, manifest, pages))
    return runs


def plan_landing(root: Path, database: Path, days: int, now: datetime) -> LandingPlan:
    """Which runs under ``root`` may be deleted (see the module docstring).

    Raises:
        WarehouseError: The warehouse (its ``load_runs``) cannot be read: nothing can be proven
            merged, so nothing is planned.
        LandingError: A manifest cannot be read.
    """
    plan = LandingPlan(cutoff=now - timedelta(days=days))
    runs = landed_runs(root)
    if not runs:
        return plan
    facts = _warehouse_facts(database)
    newest: dict[tuple[str, str], tuple[datetime, str]] = {}
    for run in runs:
        for page in run.pages:
            key = (run.source_system, page.resource_type)
            newest[key] = max(
                newest.get(key, (page.created_at, run.run_id)), (page.created_at, run.run_id)
            )
    newest_runs = {run_id for _, run_id in newest.values()}
    for run in runs:
        reason = _kept_because(run, plan.cutoff, facts, newest_runs)
        if reason is None:
            plan.deletable.append(run)
        else:
            plan.kept[reason].append(run.run_id)
    return plan


def _kept_because(
    run: LandedRun, cutoff: datetime, facts: _WarehouseFacts, newest_runs: set[str]
) -> str | None:
    if run.written_at >= cutoff:
        return TOO_RECENT
    if facts.run_status.get(run.run_id) not in MERGED_STATUSES:
        return NOT_SUCCEEDED
    if run.run_id in newest_runs:
        return NEWEST_OF_TYPE
    files = {page.landing_file for page in run.pages}
    if files & facts.current_files:
        return CURRENT_ROWS
    quarantine_files = {page.landing_file for page in run.pages if page.resource_type == QUARANTINE}
    if quarantine_files & facts.open_quarantine_files:
        return OPEN_QUARANTINE
    return None


def apply_landing(root: Path, plan: LandingPlan) -> int:
    """Delete the plan's runs: pages first, the manifest last; returns the pages deleted.

    A page already gone is skipped; empty date and type folders are removed.

    Raises:
        LandingError: A file cannot be deleted (the runs before it are deleted already; the
            run is left with its manifest, so running again finishes it).
    """
    deleted = 0
    for run in plan.deletable:
        folders: set[Path] = set()
        for page in run.pages:
            path = root / page.landing_file
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                raise LandingError(
                    f"cannot delete landing page {page.landing_file}: {type(error).__name__}"
                ) from error
            deleted += 1
            folders.add(path.parent)
        try:
            run.manifest.unlink(missing_ok=True)
        except OSError as error:
            raise LandingError(
                f"cannot delete landing manifest {run.manifest}: {type(error).__name__}"
            ) from error
        for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
            _remove_empty(folder, stop=root / run.source_system)
        logger.info("retention: deleted run %s (%d pages)", run.run_id, len(run.pages))
    return deleted


def _remove_empty(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _warehouse_facts(database: Path) -> _WarehouseFacts:
    if not database.exists():
        raise WarehouseError(
            f"no warehouse at {database}: landing retention needs load_runs to prove pages merged"
        )
    try:
        with connect_warehouse(database, read_only=True) as connection:
            tables = raw_tables_with(connection, "landing_file")
            if LOAD_RUNS not in _tables(connection):
                raise WarehouseError(f"{database} has no {RAW_DATASET}.{LOAD_RUNS}")
            status = dict(
                connection.execute(
                    f'select run_id, status from "{RAW_DATASET}"."{LOAD_RUNS}"'
                ).fetchall()
            )
            current: set[str] = set()
            for table in tables:
                current.update(
                    name
                    for (name,) in connection.execute(
                        f'select distinct landing_file from "{RAW_DATASET}"."{table}" '
                        "where landing_file is not null"
                    ).fetchall()
                )
    except duckdb.Error as error:
        raise WarehouseError(
            f"cannot read {database} for retention: {type(error).__name__}"
        ) from error
    open_files = frozenset(
        entry.landing_file
        for entry in read_entries(database)
        if entry.status == OPEN and entry.landing_file
    )
    return _WarehouseFacts(status, frozenset(current), open_files)


def _tables(connection: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        name
        for (name,) in connection.execute(
            "select table_name from information_schema.tables where table_schema = ?",
            [RAW_DATASET],
        ).fetchall()
    }


def raw_tables_with(connection: duckdb.DuckDBPyConnection, column: str) -> list[str]:
    """The raw resource tables (those with ``content_hash``) that have ``column``."""
    rows = connection.execute(
        """
        select table_name from information_schema.columns
        where table_schema = ? and column_name in (?, 'content_hash')
        group by table_name having count(distinct column_name) = 2
        order by table_name
        """,
        [RAW_DATASET, column],
    ).fetchall()
    return [name for (name,) in rows]
