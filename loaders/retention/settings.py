"""How long landing pages and operational rows are kept: days, or None to keep them forever.

Resolved like the other settings: an explicit value (a CLI flag), then the environment
(``FHIR_ELT_LANDING_RETENTION_DAYS``, ``FHIR_ELT_OPERATIONAL_RETENTION_DAYS``), then
``.dlt/config.toml`` (``[fhir_elt]`` ``landing_retention_days``, ``operational_retention_days``),
then the default: keep forever.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from loaders.dlt_config import config_value
from loaders.exceptions import ConfigError

LANDING_ENV = "FHIR_ELT_LANDING_RETENTION_DAYS"
OPERATIONAL_ENV = "FHIR_ELT_OPERATIONAL_RETENTION_DAYS"


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """Retention periods in days (None: keep forever).

    Attributes:
        landing_days: Landing pages of runs older than this may be deleted (see
            :mod:`loaders.retention.landing` for what is always kept).
        operational_days: ``request_log`` rows older than this may be deleted (see
            :mod:`loaders.retention.operational`).
    """

    landing_days: int | None = None
    operational_days: int | None = None

    def __post_init__(self) -> None:
        for name in ("landing_days", "operational_days"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"retention {name} must be at least 1 day, got {value}")

    @classmethod
    def resolve(
        cls, *, landing_days: int | None = None, operational_days: int | None = None
    ) -> RetentionSettings:
        """Settings from explicit values, falling back to environment, dlt config, forever."""
        return cls(
            landing_days=landing_days
            if landing_days is not None
            else _days("landing_retention_days", LANDING_ENV),
            operational_days=operational_days
            if operational_days is not None
            else _days("operational_retention_days", OPERATIONAL_ENV),
        )


def _days(name: str, env_var: str) -> int | None:
    raw = os.environ.get(env_var) or config_value(f"fhir_elt.{name}")
    if raw in (None, ""):
        return None
    try:
        return int(str(raw))
    except ValueError:
        raise ConfigError(f"{name} ({env_var}) must be a whole number of days") from None
