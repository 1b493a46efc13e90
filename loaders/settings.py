"""Where a load reads and writes: resolved once, from flags, environment and dlt config.

Precedence for each setting: an explicit argument (a CLI flag), then the environment variable,
then ``.dlt/config.toml`` (section ``[fhir_elt]``, read as dlt reads it: see
:mod:`loaders.dlt_config`), then the default. The DuckDB path variable
is shared with the dbt profile so the loader and dbt always agree on the warehouse file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loaders.dlt_config import config_value
from loaders.exceptions import ConfigError
from loaders.validation.mode import OFF, ValidationMode, parse_validation_mode

DEFAULT_DUCKDB_PATH = Path("warehouse/fhir.duckdb")
DEFAULT_LANDING_ROOT = Path("landing")
DEFAULT_SOURCE_SYSTEM = "files"
DEFAULT_PAGE_SIZE = 20_000
DEFAULT_DUCKDB_MEMORY_LIMIT = "256MB"

DUCKDB = "duckdb"
SNOWFLAKE = "snowflake"
DESTINATIONS = (DUCKDB, SNOWFLAKE)


def _setting(name: str, env_var: str, default: str) -> str:
    value = os.environ.get(env_var)
    if value:
        return value
    configured = config_value(f"fhir_elt.{name}")
    return str(configured) if configured not in (None, "") else default


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """Settings of one load.

    Attributes:
        duckdb_path: The DuckDB warehouse file (``FHIR_ELT_DUCKDB_PATH``).
        landing_root: The landing zone directory (``FHIR_ELT_LANDING_ROOT``).
        source_system: Name of the source the data came from; part of every raw key.
        page_size: Resources per landing page (and per merge batch).
        pipelines_dir: Where dlt keeps pipeline working state.
        duckdb_memory_limit: DuckDB's memory cap during the merge (``FHIR_ELT_DUCKDB_MEMORY``);
            past it DuckDB spills to disk, so the load's memory does not grow with its input.
        destination: Where the raw and operational tables go (``FHIR_ELT_DESTINATION``):
            ``duckdb`` (the file at ``duckdb_path``) or ``snowflake`` (dlt's snowflake
            destination; credentials from dlt's ``destination.snowflake.credentials``).
        validation: Which resources are validated against ``fhir.resources.R4B`` before they
            are landed (``FHIR_ELT_VALIDATION``): ``off``, ``sample:N`` (N percent, chosen
            by content hash) or ``full``; invalid ones are quarantined.
    """

    duckdb_path: Path
    landing_root: Path
    source_system: str = DEFAULT_SOURCE_SYSTEM
    page_size: int = DEFAULT_PAGE_SIZE
    pipelines_dir: Path | None = None
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    destination: str = DUCKDB
    validation: ValidationMode = OFF

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ConfigError(f"page_size must be at least 1, got {self.page_size}")
        if self.destination not in DESTINATIONS:
            raise ConfigError(
                f"destination must be one of {', '.join(DESTINATIONS)}, got {self.destination!r}"
            )

    @property
    def on_snowflake(self) -> bool:
        """Whether the load writes to Snowflake (through dlt) rather than the DuckDB file."""
        return self.destination == SNOWFLAKE

    @property
    def dlt_pipelines_dir(self) -> Path:
        """dlt's working directory: beside the warehouse file unless set."""
        return self.pipelines_dir or self.duckdb_path.parent / "dlt_pipelines"

    @classmethod
    def resolve(
        cls,
        *,
        duckdb_path: Path | None = None,
        landing_root: Path | None = None,
        source_system: str | None = None,
        page_size: int | None = None,
        destination: str | None = None,
        validation: str | None = None,
    ) -> LoadSettings:
        """Settings from explicit values, falling back to environment, dlt config, defaults."""
        return cls(
            duckdb_path=duckdb_path
            or Path(_setting("duckdb_path", "FHIR_ELT_DUCKDB_PATH", str(DEFAULT_DUCKDB_PATH))),
            landing_root=landing_root
            or Path(_setting("landing_root", "FHIR_ELT_LANDING_ROOT", str(DEFAULT_LANDING_ROOT))),
            source_system=source_system
            or _setting("source_system", "FHIR_ELT_SOURCE_SYSTEM", DEFAULT_SOURCE_SYSTEM),
            page_size=page_size
            or int(_setting("page_size", "FHIR_ELT_PAGE_SIZE", str(DEFAULT_PAGE_SIZE))),
            duckdb_memory_limit=_setting(
                "duckdb_memory_limit", "FHIR_ELT_DUCKDB_MEMORY", DEFAULT_DUCKDB_MEMORY_LIMIT
            ),
            destination=(
                destination or _setting("destination", "FHIR_ELT_DESTINATION", DUCKDB)
            ).lower(),
            validation=parse_validation_mode(
                validation or _setting("validation", "FHIR_ELT_VALIDATION", str(OFF))
            ),
        )
