"""The warehouse's raw tables against a test server's truth: lost, stale, duplicated, extra.

Shared by the REST and Bulk Data integration tests (``rest_support``, ``bulk_support``).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from loaders.settings import LoadSettings

Key = tuple[str, str]
_KEY_COLUMNS = {"resource_type", "id", "is_deleted", "version_id"}


@dataclass(frozen=True)
class Comparison:
    """The warehouse against the server's truth."""

    lost: set[Key]
    stale: set[Key]
    duplicated: int
    extra: set[Key]

    @property
    def exact(self) -> bool:
        return not (self.lost or self.stale or self.duplicated or self.extra)


def stored_rows(settings: LoadSettings, source: str) -> tuple[dict[Key, tuple[str, bool]], int]:
    """``(type, id) -> (version_id, is_deleted)`` over every raw resource table of ``source``,
    and how many keys are stored twice."""
    stored: dict[Key, tuple[str, bool]] = {}
    duplicated = 0
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        columns: dict[str, set[str]] = {}
        for table, column in connection.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'raw_fhir'"
        ).fetchall():
            columns.setdefault(table, set()).add(column)
        for table in sorted(t for t, names in columns.items() if names >= _KEY_COLUMNS):
            rows = connection.execute(
                f"select resource_type, id, version_id, is_deleted from raw_fhir.{table} "
                "where source_system = ?",
                [source],
            ).fetchall()
            keys = [(rtype, rid) for rtype, rid, _, _ in rows]
            duplicated += len(keys) - len(set(keys))
            stored.update({(rtype, rid): (vid, deleted) for rtype, rid, vid, deleted in rows})
    return stored, duplicated


def compare(settings: LoadSettings, truth: dict[Key, tuple[str, str]], source: str) -> Comparison:
    """Lost, stale (another version stored), duplicated, and live rows the server lacks.

    Args:
        truth: ``(type, id) -> (versionId, lastUpdated)`` of the server's current resources.
    """
    stored, duplicated = stored_rows(settings, source)
    live = {key: version for key, (version, deleted) in stored.items() if not deleted}
    lost = {key for key in truth if key not in live}
    stale = {key for key in truth if key in live and live[key] != truth[key][0]}
    extra = {key for key in live if key not in truth}
    return Comparison(lost, stale, duplicated, extra)
