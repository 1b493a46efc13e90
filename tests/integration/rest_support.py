"""Helpers for REST extraction tests: a source config for the test server, the warehouse's view.

Assertions compare the warehouse with the server's own truth (``FhirTestServer.truth()``):
lost = a current version the warehouse does not hold; duplicated = a key stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import duckdb

from loaders.fhir import CORE_RESOURCE_TYPES, table_name_for
from loaders.rest.commands import run_rest
from loaders.rest.config import RestSourceConfig, ScheduleGroup
from loaders.rest.sync import SyncReport
from loaders.settings import LoadSettings

SOURCE = "ehr"


def rest_config(base_url: str, **overrides: Any) -> RestSourceConfig:
    """A fast-retrying config for the local server (test-sized delays and timeouts)."""
    config = RestSourceConfig(
        name=SOURCE,
        base_url=base_url,
        groups=(ScheduleGroup("all", CORE_RESOURCE_TYPES, 0),),
        page_size=50,
        retry_base_delay=0.01,
        retry_max_delay=0.05,
        max_elapsed_seconds=60,
        connect_timeout=2,
        read_timeout=2,
        concurrency=2,
    )
    return replace(config, **overrides)


def run(settings: LoadSettings, config: RestSourceConfig, **kwargs: Any) -> SyncReport:
    """One ``load rest`` (or ``backfill`` with ``since=``) through the real client."""
    return run_rest(config.name, settings, config=config, progress=False, **kwargs)


@dataclass(frozen=True)
class Comparison:
    """The warehouse against the server's truth."""

    lost: set[tuple[str, str]]
    stale: set[tuple[str, str]]
    duplicated: int
    extra: set[tuple[str, str]]

    @property
    def exact(self) -> bool:
        return not (self.lost or self.stale or self.duplicated or self.extra)


def stored_versions(settings: LoadSettings) -> tuple[dict[tuple[str, str], str], int]:
    """``(type, id) -> version_id`` in the raw tables, and how many keys are stored twice."""
    stored: dict[tuple[str, str], str] = {}
    duplicated = 0
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        tables = {
            name
            for (name,) in connection.execute(
                "select table_name from information_schema.tables where table_schema='raw_fhir'"
            ).fetchall()
        }
        for resource_type in CORE_RESOURCE_TYPES:
            table = table_name_for(resource_type)
            if table not in tables:
                continue
            rows = connection.execute(
                f"select id, version_id from raw_fhir.{table} where source_system = ?", [SOURCE]
            ).fetchall()
            ids = [row[0] for row in rows]
            duplicated += len(ids) - len(set(ids))
            stored.update({(resource_type, rid): version for rid, version in rows})
    return stored, duplicated


def compare(settings: LoadSettings, truth: dict[tuple[str, str], tuple[str, str]]) -> Comparison:
    """Lost, stale (older version stored), duplicated and unexpected keys."""
    stored, duplicated = stored_versions(settings)
    lost = {key for key in truth if key not in stored}
    stale = {key for key in truth if key in stored and stored[key] != truth[key][0]}
    extra = {key for key in stored if key not in truth}
    return Comparison(lost, stale, duplicated, extra)


def cursors(settings: LoadSettings) -> dict[str, str]:
    """The committed REST cursors of the test source."""
    from loaders.warehouse.pipeline import make_pipeline, read_raw_state

    pipeline = make_pipeline(replace(settings, source_system=SOURCE))
    return dict(read_raw_state(pipeline).get("rest", {}).get("cursors", {}))
