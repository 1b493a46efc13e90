"""The configuration of one FHIR REST source, read through dlt's config and secrets providers.

Every key is looked up on its own, so each can come from ``.dlt/config.toml``,
``.dlt/secrets.toml`` or an environment variable (``SOURCES__FHIR_REST__<NAME>__<KEY>``)::

    [sources.fhir_rest.epic_prod]
    base_url = "https://fhir.example.org/api/FHIR/R4"
    auth = "smart_backend"          # none | static | client_credentials | smart_backend
    client_id = "fhir-elt"
    scope = "system/*.read"
    rate_limit = 100                # the source's published limit ...
    rate_limit_period_seconds = 60  # ... per this many seconds
    headroom = 0.6                  # run at 60 of 100

    [sources.fhir_rest.epic_prod.groups.volatile]   # schedule groups, by volatility
    types = ["Encounter", "Observation"]
    every_minutes = 60

    [sources.fhir_rest.epic_prod.types.Observation] # per-type strategy (servers without
    strategy = "clinical_date"                      # _lastUpdated search, such as Epic)
    date_param = "date"
    lookback_days = 30

Secrets (``.dlt/secrets.toml`` or environment): ``client_secret``, ``private_key`` (PEM) or
``token`` under ``[sources.fhir_rest.<name>.credentials]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

import orjson

from loaders.exceptions import ConfigError
from loaders.fhir import CORE_RESOURCE_TYPES, is_known_resource_type
from loaders.source_config import SourceSection

_SOURCE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


class Strategy(StrEnum):
    """How a resource type's changes are found on the server.

    - ``last_updated``: ``_lastUpdated=gt{cursor - overlap}``; sees every create and edit
      (the server stamps ``meta.lastUpdated``); misses deletions.
    - ``clinical_date``: the type's clinical date parameter (``date=ge{cursor - lookback}``);
      sees new resources whose clinical date is within the lookback; does NOT see edits to
      resources with an older clinical date, nor deletions.
    - ``full_sweep``: every resource of the type each time its group runs; sees every create
      and edit (unchanged resources are skipped by content hash before the merge); misses
      deletions (the reconciliation sweep finds those).
    - ``per_patient``: ``?patient=Patient/{id}`` for each patient already loaded, for servers
      that refuse system-wide search; sees what the patient search returns, with
      ``_lastUpdated`` when the server supports it; misses resources of patients not yet
      loaded (sync Patient first).
    """

    LAST_UPDATED = "last_updated"
    CLINICAL_DATE = "clinical_date"
    FULL_SWEEP = "full_sweep"
    PER_PATIENT = "per_patient"


class AuthKind(StrEnum):
    """How fhir-elt gets an access token."""

    NONE = "none"
    STATIC = "static"
    CLIENT_CREDENTIALS = "client_credentials"
    SMART_BACKEND = "smart_backend"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Authentication of one source. Secret values are never shown in a repr or message."""

    kind: AuthKind = AuthKind.NONE
    token_url: str | None = None
    client_id: str | None = None
    scope: str = "system/*.read"
    kid: str | None = None
    algorithm: str = "RS384"
    jwks_url: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def credential_client_id(self) -> str | None:
        """The OAuth client id a run authenticates as (None without a client: none, static)."""
        if self.kind in (AuthKind.CLIENT_CREDENTIALS, AuthKind.SMART_BACKEND):
            return self.client_id
        return None


@dataclass(frozen=True, slots=True)
class TypeConfig:
    """How one resource type is extracted."""

    resource_type: str
    strategy: Strategy = Strategy.LAST_UPDATED
    date_param: str = "date"
    lookback_days: int = 30


@dataclass(frozen=True, slots=True)
class ScheduleGroup:
    """Resource types that change at a similar pace, synced on one schedule."""

    name: str
    types: tuple[str, ...]
    every_minutes: int = 0


@dataclass(frozen=True, slots=True)
class RestSourceConfig:
    """Everything a REST sync of one source needs (see the module docstring for the keys)."""

    name: str
    base_url: str
    auth: AuthConfig = AuthConfig()
    groups: tuple[ScheduleGroup, ...] = ()
    types: dict[str, TypeConfig] = field(default_factory=dict)
    page_size: int = 100
    overlap_hours: float = 24.0
    rate_limit: int | None = None
    rate_limit_period_seconds: float = 60.0
    headroom: float = 0.6
    concurrency: int = 2
    max_attempts: int = 8
    max_elapsed_seconds: float = 600.0
    max_retry_after_seconds: float = 900.0
    retry_base_delay: float = 0.5
    retry_max_delay: float = 60.0
    connect_timeout: float = 30.0
    read_timeout: float = 120.0
    circuit_breaker_threshold: int = 10
    verify_windows: bool = True
    max_window_repages: int = 2
    backfill_window_resources: int = 10_000
    backfill_min_window_hours: float = 1.0
    backfill_window_days: int = 30

    @property
    def resource_types(self) -> tuple[str, ...]:
        """Every configured type, in group order (Patient first when present)."""
        seen: list[str] = []
        for group in self.groups:
            seen.extend(t for t in group.types if t not in seen)
        return tuple(sorted(seen, key=lambda t: (t != "Patient", seen.index(t))))

    def type_config(self, resource_type: str) -> TypeConfig:
        """The type's strategy (``last_updated`` unless configured)."""
        return self.types.get(resource_type) or TypeConfig(resource_type)

    def group(self, name: str) -> ScheduleGroup:
        """A schedule group by name."""
        for group in self.groups:
            if group.name == name:
                return group
        known = ", ".join(g.name for g in self.groups)
        raise ConfigError(f"source {self.name!r} has no group {name!r} (groups: {known})")


_SECTION = SourceSection("sources.fhir_rest")
_key = _SECTION.key
_get = _SECTION.get
_number = _SECTION.number


def _types(source: str, raw: Any, where: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where} must be a non-empty list of resource types")
    for resource_type in raw:
        if not isinstance(resource_type, str) or not is_known_resource_type(resource_type):
            raise ConfigError(f"{where}: {resource_type!r} is not a FHIR R4 resource type")
    return tuple(raw)


def _auth(source: str) -> AuthConfig:
    return read_auth(partial(_key, source), partial(_get, source))


def read_auth(key: Callable[[str], str], get: Callable[..., Any]) -> AuthConfig:
    """A source's auth settings, checked (shared by REST and Bulk Data sources).

    Args:
        key: The full config key of a source key (for messages).
        get: Reads a source key: ``get(key, default=None, *, secret=False)``.

    Raises:
        ConfigError: An unknown auth kind, or a credential the kind needs is missing (the
            message names the keys, never a value).
    """
    raw_kind = str(get("auth", "none"))
    try:
        kind = AuthKind(raw_kind)
    except ValueError:
        allowed = ", ".join(k.value for k in AuthKind)
        raise ConfigError(f"{key('auth')} must be one of {allowed}") from None
    auth = AuthConfig(
        kind=kind,
        token_url=get("token_url"),
        client_id=get("client_id"),
        scope=str(get("scope", "system/*.read")),
        kid=get("kid"),
        algorithm=str(get("algorithm", "RS384")),
        jwks_url=get("jwks_url"),
        client_secret=get("credentials.client_secret", secret=True),
        private_key=get("credentials.private_key", secret=True),
        token=get("credentials.token", secret=True),
    )
    needs = {
        AuthKind.STATIC: ("credentials.token",),
        AuthKind.CLIENT_CREDENTIALS: ("client_id", "credentials.client_secret"),
        AuthKind.SMART_BACKEND: ("client_id", "credentials.private_key"),
    }.get(kind, ())
    values = {
        "credentials.token": auth.token,
        "client_id": auth.client_id,
        "credentials.client_secret": auth.client_secret,
        "credentials.private_key": auth.private_key,
    }
    missing = [key(name) for name in needs if not values[name]]
    if missing:
        raise ConfigError(
            f"auth {kind.value} needs {', '.join(missing)} (secrets go in "
            ".dlt/secrets.toml or the environment)"
        )
    if kind is AuthKind.SMART_BACKEND and auth.algorithm not in ("RS384", "ES384"):
        raise ConfigError(f"{key('algorithm')} must be RS384 or ES384")
    return auth


def _table(source: str, key: str) -> Any:
    """A table from TOML, or from an environment variable holding JSON."""
    raw = _get(source, key)
    if isinstance(raw, str):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ConfigError(f"{_key(source, key)} is not valid JSON") from None
    return raw


def _groups(source: str) -> tuple[ScheduleGroup, ...]:
    raw = _table(source, "groups")
    if raw is None:
        return (ScheduleGroup("all", CORE_RESOURCE_TYPES, 0),)
    if not isinstance(raw, dict):
        raise ConfigError(f"{_key(source, 'groups')} must be a table of groups")
    groups = []
    for name, body in raw.items():
        where = _key(source, f"groups.{name}")
        if not isinstance(body, dict):
            raise ConfigError(f"{where} must be a table with types and every_minutes")
        every = body.get("every_minutes", 0)
        if not isinstance(every, int) or every < 0:
            raise ConfigError(f"{where}.every_minutes must be a whole number of minutes >= 0")
        groups.append(ScheduleGroup(str(name), _types(source, body.get("types"), where), every))
    return tuple(groups)


def _type_configs(source: str) -> dict[str, TypeConfig]:
    raw = _table(source, "types") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{_key(source, 'types')} must be a table of resource types")
    configs = {}
    for resource_type, body in raw.items():
        where = _key(source, f"types.{resource_type}")
        _types(source, [resource_type], where)
        if not isinstance(body, dict):
            raise ConfigError(f"{where} must be a table (strategy, date_param, lookback_days)")
        try:
            strategy = Strategy(body.get("strategy", Strategy.LAST_UPDATED))
        except ValueError:
            allowed = ", ".join(s.value for s in Strategy)
            raise ConfigError(f"{where}.strategy must be one of {allowed}") from None
        lookback = body.get("lookback_days", 30)
        if not isinstance(lookback, int) or lookback < 0:
            raise ConfigError(f"{where}.lookback_days must be a whole number of days >= 0")
        configs[resource_type] = TypeConfig(
            resource_type, strategy, str(body.get("date_param", "date")), lookback
        )
    return configs


def load_rest_source_config(name: str) -> RestSourceConfig:
    """Read and check the configuration of the REST source ``name``.

    Raises:
        ConfigError: A key is missing or malformed; the message names the key.
    """
    if not _SOURCE_NAME.fullmatch(name):
        raise ConfigError(
            f"source name {name!r} must be lower case letters, digits and underscores"
        )
    base_url = _get(name, "base_url")
    if not base_url or not str(base_url).startswith(("http://", "https://")):
        raise ConfigError(f"{_key(name, 'base_url')} must be set to the server's http(s) base URL")
    rate_limit = _get(name, "rate_limit")
    headroom = _number(name, "headroom", 0.6, minimum=0.01, integer=False)
    if headroom > 1:
        raise ConfigError(f"{_key(name, 'headroom')} must be at most 1, got {headroom}")
    return RestSourceConfig(
        name=name,
        base_url=str(base_url).rstrip("/"),
        auth=_auth(name),
        groups=_groups(name),
        types=_type_configs(name),
        page_size=_number(name, "page_size", 100, minimum=1, integer=True),
        overlap_hours=_number(name, "overlap_hours", 24.0, minimum=0, integer=False),
        rate_limit=None
        if rate_limit is None
        else _number(name, "rate_limit", 0, minimum=1, integer=True),
        rate_limit_period_seconds=_number(
            name, "rate_limit_period_seconds", 60.0, minimum=0.001, integer=False
        ),
        headroom=headroom,
        concurrency=_number(name, "concurrency", 2, minimum=1, integer=True),
        max_attempts=_number(name, "max_attempts", 8, minimum=1, integer=True),
        max_elapsed_seconds=_number(name, "max_elapsed_seconds", 600.0, minimum=1, integer=False),
        max_retry_after_seconds=_number(
            name, "max_retry_after_seconds", 900.0, minimum=0, integer=False
        ),
        retry_base_delay=_number(name, "retry_base_delay", 0.5, minimum=0, integer=False),
        retry_max_delay=_number(name, "retry_max_delay", 60.0, minimum=0, integer=False),
        connect_timeout=_number(name, "connect_timeout", 30.0, minimum=0.01, integer=False),
        read_timeout=_number(name, "read_timeout", 120.0, minimum=0.01, integer=False),
        circuit_breaker_threshold=_number(
            name, "circuit_breaker_threshold", 10, minimum=1, integer=True
        ),
        verify_windows=bool(_get(name, "verify_windows", True)),
        max_window_repages=_number(name, "max_window_repages", 2, minimum=0, integer=True),
        backfill_window_resources=_number(
            name, "backfill_window_resources", 10_000, minimum=1, integer=True
        ),
        backfill_min_window_hours=_number(
            name, "backfill_min_window_hours", 1.0, minimum=0.001, integer=False
        ),
        backfill_window_days=_number(name, "backfill_window_days", 30, minimum=1, integer=True),
    )
