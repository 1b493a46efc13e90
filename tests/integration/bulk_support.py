"""Helpers for Bulk Data tests: a source config for the test server, the warehouse's view.

Assertions compare the warehouse with the server's truth (``FhirTestServer.truth()``): lost =
a current version the warehouse does not hold as a live row; stale = an older version stored;
duplicated = a key stored twice; extra = a live row the server does not have (a deletion the
loader missed); and every deleted key must be stored with ``is_deleted``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import duckdb

from loaders.bulk.checkpoint import BulkState
from loaders.bulk.commands import run_bulk
from loaders.bulk.config import BulkSourceConfig
from loaders.bulk.export import BulkReport
from loaders.settings import LoadSettings
from tests.integration import warehouse_truth
from tests.integration.warehouse_truth import Comparison

SOURCE = "ehr_bulk"


def bulk_config(base_url: str, **overrides: Any) -> BulkSourceConfig:
    """A fast config for the local server (test-sized waits, retries and timeouts)."""
    config = BulkSourceConfig(
        name=SOURCE,
        base_url=base_url,
        min_poll_interval_seconds=0.0,
        default_poll_interval_seconds=0.05,
        max_poll_interval_seconds=0.2,
        max_poll_wait_seconds=30.0,
        retry_base_delay=0.01,
        retry_max_delay=0.05,
        max_elapsed_seconds=60,
        connect_timeout=2,
        read_timeout=5,
        download_concurrency=2,
    )
    return replace(config, **overrides)


def run(settings: LoadSettings, config: BulkSourceConfig, **kwargs: Any) -> BulkReport:
    """One ``load bulk`` through the real client."""
    return run_bulk(config.name, settings, config=config, progress=False, **kwargs)


def compare(settings: LoadSettings, truth: dict[tuple[str, str], tuple[str, str]]) -> Comparison:
    """Lost, stale, duplicated, and live rows the server no longer has."""
    return warehouse_truth.compare(settings, truth, SOURCE)


def deleted_keys(settings: LoadSettings) -> set[tuple[str, str]]:
    """Keys stored with ``is_deleted``."""
    stored, _ = warehouse_truth.stored_rows(settings, SOURCE)
    return {key for key, (_, deleted) in stored.items() if deleted}


def bulk_state(settings: LoadSettings) -> BulkState:
    """The committed ``bulk`` state of the test source."""
    from loaders.warehouse.pipeline import make_pipeline, read_raw_state

    pipeline = make_pipeline(replace(settings, source_system=SOURCE))
    return BulkState.from_state(read_raw_state(pipeline))


def query(settings: LoadSettings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the warehouse."""
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        return connection.execute(sql, list(params)).fetchall()
