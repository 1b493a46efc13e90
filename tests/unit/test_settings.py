"""Settings precedence: explicit value, then environment, then default."""

from __future__ import annotations

from pathlib import Path

import pytest

from loaders.exceptions import ConfigError
from loaders.settings import DEFAULT_DUCKDB_MEMORY_LIMIT, LoadSettings


def test_environment_overrides_defaults_and_flags_override_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FHIR_ELT_DUCKDB_PATH", "/data/env.duckdb")
    monkeypatch.setenv("FHIR_ELT_DUCKDB_MEMORY", "2GB")
    monkeypatch.setenv("FHIR_ELT_PAGE_SIZE", "500")
    from_env = LoadSettings.resolve()
    assert from_env.duckdb_path == Path("/data/env.duckdb")
    assert (from_env.duckdb_memory_limit, from_env.page_size) == ("2GB", 500)
    explicit = LoadSettings.resolve(duckdb_path=Path("flag.duckdb"), page_size=7)
    assert (explicit.duckdb_path, explicit.page_size) == (Path("flag.duckdb"), 7)


def test_defaults_and_derived_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "FHIR_ELT_DUCKDB_PATH",
        "FHIR_ELT_DUCKDB_MEMORY",
        "FHIR_ELT_LANDING_ROOT",
        "FHIR_ELT_SOURCE_SYSTEM",
        "FHIR_ELT_PAGE_SIZE",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = LoadSettings.resolve()
    assert settings.duckdb_memory_limit == DEFAULT_DUCKDB_MEMORY_LIMIT
    assert settings.dlt_pipelines_dir == settings.duckdb_path.parent / "dlt_pipelines"


def test_page_size_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="page_size"):
        LoadSettings(duckdb_path=Path("w.duckdb"), landing_root=Path("l"), page_size=0)


def test_destination_from_flag_environment_or_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FHIR_ELT_DESTINATION", raising=False)
    assert LoadSettings.resolve().destination == "duckdb"
    assert not LoadSettings.resolve().on_snowflake
    monkeypatch.setenv("FHIR_ELT_DESTINATION", "Snowflake")
    assert LoadSettings.resolve().on_snowflake
    assert LoadSettings.resolve(destination="duckdb").destination == "duckdb"
    monkeypatch.setenv("FHIR_ELT_DESTINATION", "bigquery")
    with pytest.raises(ConfigError, match="destination must be one of duckdb, snowflake"):
        LoadSettings.resolve()
