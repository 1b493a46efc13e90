"""One kind of source's keys, read through dlt's config and secrets providers and checked.

REST sources live under ``sources.fhir_rest.<name>``, Bulk Data sources under
``sources.fhir_bulk.<name>``; each key can come from ``.dlt/config.toml``,
``.dlt/secrets.toml`` or an environment variable. Every error names the full key, never a
secret's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dlt

from loaders.exceptions import ConfigError


@dataclass(frozen=True, slots=True)
class SourceSection:
    """The config section of one kind of source, e.g. ``sources.fhir_rest``."""

    section: str

    def key(self, source: str, key: str) -> str:
        """The full key, as messages name it: ``sources.fhir_rest.epic.page_size``."""
        return f"{self.section}.{source}.{key}"

    def get(self, source: str, key: str, default: Any = None, *, secret: bool = False) -> Any:
        """The value (from the secrets provider when ``secret``), or ``default`` when unset."""
        provider = dlt.secrets if secret else dlt.config
        value = provider.get(self.key(source, key))
        return default if value is None else value

    def number(
        self, source: str, key: str, default: float, *, minimum: float, integer: bool
    ) -> Any:
        """A number at least ``minimum`` (an int when ``integer``)."""
        value = self.get(source, key, default)
        try:
            number = int(value) if integer else float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.key(source, key)} must be a number, got {value!r}") from None
        if number < minimum:
            raise ConfigError(f"{self.key(source, key)} must be at least {minimum}, got {number}")
        return number

    def flag(self, source: str, key: str, default: bool) -> bool:
        """A boolean, also from ``true/false``, ``1/0`` or ``yes/no`` text (environment)."""
        value = self.get(source, key, default)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ConfigError(f"{self.key(source, key)} must be true or false, got {value!r}")
