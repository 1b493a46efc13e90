"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from loaders.settings import LoadSettings

# The local FHIR test server and its fixtures (synthetic_resources, fhir_server, ...).
pytest_plugins = ["tests.fhir_server.fixtures"]


@pytest.fixture
def settings(tmp_path: Path) -> LoadSettings:
    """Load settings pointing at a fresh warehouse and landing zone under tmp_path."""
    return LoadSettings(
        duckdb_path=tmp_path / "warehouse" / "fhir.duckdb",
        landing_root=tmp_path / "landing",
        source_system="test",
        page_size=1000,
    )
