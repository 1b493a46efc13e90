"""Helpers for REST extraction tests: a source config for the test server, the warehouse's view.

Assertions compare the warehouse with the server's own truth (``FhirTestServer.truth()``):
lost = a current version the warehouse does not hold; duplicated = a key stored twice.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from loaders.fhir import CORE_RESOURCE_TYPES
from loaders.rest.commands import run_rest
from loaders.rest.config import RestSourceConfig, ScheduleGroup
from loaders.rest.sync import SyncReport
from loaders.settings import LoadSettings
from tests.integration import warehouse_truth
from tests.integration.warehouse_truth import Comparison

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


def compare(settings: LoadSettings, truth: dict[tuple[str, str], tuple[str, str]]) -> Comparison:
    """Lost, stale (older version stored), duplicated and unexpected keys."""
    return warehouse_truth.compare(settings, truth, SOURCE)


def cursors(settings: LoadSettings) -> dict[str, str]:
    """The committed REST cursors of the test source."""
    from loaders.warehouse.pipeline import make_pipeline, read_raw_state

    pipeline = make_pipeline(replace(settings, source_system=SOURCE))
    return dict(read_raw_state(pipeline).get("rest", {}).get("cursors", {}))
