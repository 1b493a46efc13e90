"""The configuration of one FHIR Bulk Data source, read through dlt's config and secrets providers.

Every key is looked up on its own, so each can come from ``.dlt/config.toml``,
``.dlt/secrets.toml`` or an environment variable (``SOURCES__FHIR_BULK__<NAME>__<KEY>``)::

    [sources.fhir_bulk.epic_bulk]
    base_url = "https://fhir.example.org/api/FHIR/R4"
    auth = "smart_backend"            # none | static | client_credentials | smart_backend
    token_url = "https://fhir.example.org/oauth2/token"
    client_id = "fhir-elt"
    level = "group"                   # system | patient | group
    group_id = "population-1"
    types = ["Patient", "Encounter", "Observation"]
    max_poll_interval_seconds = 300   # a longer Retry-After is shortened to this
    max_poll_wait_seconds = 3600      # then leave the job for the next scheduled run

Secrets (``.dlt/secrets.toml`` or environment): ``client_secret``, ``private_key`` (PEM) or
``token`` under ``[sources.fhir_bulk.<name>.credentials]``. The source name is the
``source_system`` of every row, so a REST and a Bulk source of one EHR may share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial

from loaders.exceptions import ConfigError
from loaders.fhir import is_known_resource_type
from loaders.rest.config import AuthConfig, read_auth
from loaders.source_config import SourceSection

SECTION = "sources.fhir_bulk"
OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")

_SOURCE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_GROUP_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TYPE_FILTER = re.compile(r"([A-Z][A-Za-z]+)\?[^\s]+")
_ELEMENT = re.compile(r"([A-Z][A-Za-z]+\.)?[a-z][A-Za-z0-9]*")


class ExportLevel(StrEnum):
    """Which ``$export`` operation a source calls.

    - ``system``: ``[base]/$export``, every resource the client may read.
    - ``patient``: ``[base]/Patient/$export``, all patients and their compartments.
    - ``group``: ``[base]/Group/[id]/$export``, the group's members and their compartments.
    """

    SYSTEM = "system"
    PATIENT = "patient"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class BulkSourceConfig:
    """Everything a Bulk Data export of one source needs (see the module docstring for keys).

    Attributes:
        name: The source's name (``source_system`` of its rows).
        base_url: The FHIR base URL.
        auth: How tokens are obtained (the REST sources' settings, same keys).
        level: System, Patient or Group export.
        group_id: The Group's id (group level).
        types: ``_type``; empty asks for every type the server exports.
        type_filters: ``_typeFilter`` search URLs (``Observation?category=laboratory``).
        elements: ``_elements`` (``Patient.gender`` or ``id``).
        patients: ``patient`` references for a POST kick-off (``Patient/123``).
        since: ``_since`` of the first export; later ones use the last ``transactionTime``.
        output_format: ``_outputFormat``.
        kickoff_method: ``get`` or ``post`` (POST with a Parameters body; forced by patients).
        allow_partial_manifests: Ask for manifest pages linked by ``link[next]``.
        organize_output_by: ``organizeOutputBy`` (``Patient``): files of mixed types.
        min_poll_interval_seconds: The shortest wait between status polls.
        default_poll_interval_seconds: The wait when the server sends no ``Retry-After``.
        max_poll_interval_seconds: A longer ``Retry-After`` is shortened to this (some servers
            ask for hours; polling earlier is harmless).
        max_poll_wait_seconds: How long one run polls before it leaves the job for the next
            scheduled run (exit code 4); the job's URL is checkpointed.
        max_poll_errors: Consecutive transient failures of status polls before the run stops
            (the job stays checkpointed).
        download_concurrency: Files downloaded at once (all requests share the rate limit).
        download_attempts: Downloads of one file whose line count is short of the manifest's.
        allow_other_output_hosts: Accept output URLs on another host (presigned storage).
        send_token_to_other_hosts: Send the access token to such a host when the manifest
            says ``requiresAccessToken``; never otherwise.
        merge_batch_resources: Resources per dlt load (and checkpoint) while merging files.
        delete_job_when_done: ``DELETE`` the status URL once the export is merged.
    """

    name: str
    base_url: str
    auth: AuthConfig = field(default_factory=AuthConfig)
    level: ExportLevel = ExportLevel.SYSTEM
    group_id: str | None = None
    types: tuple[str, ...] = ()
    type_filters: tuple[str, ...] = ()
    elements: tuple[str, ...] = ()
    patients: tuple[str, ...] = ()
    since: str | None = None
    output_format: str = "application/fhir+ndjson"
    kickoff_method: str = "get"
    allow_partial_manifests: bool = False
    organize_output_by: str | None = None
    min_poll_interval_seconds: float = 1.0
    default_poll_interval_seconds: float = 10.0
    max_poll_interval_seconds: float = 300.0
    max_poll_wait_seconds: float = 3600.0
    max_poll_errors: int = 8
    download_concurrency: int = 2
    download_attempts: int = 3
    allow_other_output_hosts: bool = False
    send_token_to_other_hosts: bool = False
    merge_batch_resources: int = 50_000
    delete_job_when_done: bool = True
    rate_limit: int | None = None
    rate_limit_period_seconds: float = 60.0
    headroom: float = 0.6
    max_attempts: int = 8
    max_elapsed_seconds: float = 600.0
    max_retry_after_seconds: float = 900.0
    retry_base_delay: float = 0.5
    retry_max_delay: float = 60.0
    connect_timeout: float = 30.0
    read_timeout: float = 300.0
    circuit_breaker_threshold: int = 10

    def __post_init__(self) -> None:
        if self.level is ExportLevel.GROUP and not self.group_id:
            raise ConfigError(f"{_key(self.name, 'group_id')} is needed for a group export")
        if self.group_id is not None and not _GROUP_ID.fullmatch(self.group_id):
            raise ConfigError(f"{_key(self.name, 'group_id')} is not a FHIR id")
        if self.kickoff_method not in ("get", "post"):
            raise ConfigError(f"{_key(self.name, 'kickoff_method')} must be get or post")
        if self.output_format not in OUTPUT_FORMATS:
            allowed = ", ".join(OUTPUT_FORMATS)
            raise ConfigError(f"{_key(self.name, 'output_format')} must be one of {allowed}")
        if self.organize_output_by not in (None, "Patient"):
            raise ConfigError(f"{_key(self.name, 'organize_output_by')} may only be Patient")
        if self.max_poll_interval_seconds < self.min_poll_interval_seconds:
            raise ConfigError(
                f"{_key(self.name, 'max_poll_interval_seconds')} must be at least "
                "min_poll_interval_seconds"
            )

    @property
    def scope(self) -> str:
        """What the export covers, for state keys and messages: ``system``, ``group/<id>``."""
        if self.level is ExportLevel.GROUP:
            return f"group/{self.group_id}"
        return self.level.value


_SECTION = SourceSection(SECTION)
_key = _SECTION.key
_get = _SECTION.get
_number = _SECTION.number
_flag = _SECTION.flag


def _strings(source: str, key: str) -> tuple[str, ...]:
    raw = _get(source, key)
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ConfigError(f"{_key(source, key)} must be a list of strings")
    return tuple(raw)


def parse_types(raw: tuple[str, ...] | list[str], where: str) -> tuple[str, ...]:
    """Resource type names, each checked against FHIR R4."""
    for resource_type in raw:
        if not is_known_resource_type(resource_type):
            raise ConfigError(f"{where}: {resource_type!r} is not a FHIR R4 resource type")
    return tuple(raw)


def _type_filters(source: str) -> tuple[str, ...]:
    filters = _strings(source, "type_filters")
    for value in filters:
        match = _TYPE_FILTER.fullmatch(value)
        if match is None or not is_known_resource_type(match.group(1)):
            raise ConfigError(
                f"{_key(source, 'type_filters')}: each must be a search URL such as "
                "'Observation?category=laboratory'"
            )
    return filters


def _elements(source: str) -> tuple[str, ...]:
    elements = _strings(source, "elements")
    for value in elements:
        if not _ELEMENT.fullmatch(value):
            raise ConfigError(
                f"{_key(source, 'elements')}: each must be an element name such as "
                "'id' or 'Patient.gender'"
            )
    return elements


def _patients(source: str) -> tuple[str, ...]:
    patients = _strings(source, "patients")
    for value in patients:
        kind, _, ident = value.partition("/")
        if kind != "Patient" or not _GROUP_ID.fullmatch(ident):
            raise ConfigError(
                f"{_key(source, 'patients')}: each must be a 'Patient/<id>' reference"
            )
    return patients


def _auth(source: str) -> AuthConfig:
    return read_auth(partial(_key, source), partial(_get, source))


def load_bulk_source_config(name: str) -> BulkSourceConfig:
    """Read and check the configuration of the Bulk Data source ``name``.

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
    raw_level = str(_get(name, "level", "system"))
    try:
        level = ExportLevel(raw_level)
    except ValueError:
        allowed = ", ".join(level.value for level in ExportLevel)
        raise ConfigError(f"{_key(name, 'level')} must be one of {allowed}") from None
    rate_limit = _get(name, "rate_limit")
    headroom = _number(name, "headroom", 0.6, minimum=0.01, integer=False)
    if headroom > 1:
        raise ConfigError(f"{_key(name, 'headroom')} must be at most 1, got {headroom}")
    group_id = _get(name, "group_id")
    since = _get(name, "since")
    organize = _get(name, "organize_output_by")
    return BulkSourceConfig(
        name=name,
        base_url=str(base_url).rstrip("/"),
        auth=_auth(name),
        level=level,
        group_id=None if group_id is None else str(group_id),
        types=parse_types(_strings(name, "types"), _key(name, "types")),
        type_filters=_type_filters(name),
        elements=_elements(name),
        patients=_patients(name),
        since=None if since is None else str(since),
        output_format=str(_get(name, "output_format", "application/fhir+ndjson")),
        kickoff_method=str(_get(name, "kickoff_method", "get")).lower(),
        allow_partial_manifests=_flag(name, "allow_partial_manifests", False),
        organize_output_by=None if organize in (None, "") else str(organize),
        min_poll_interval_seconds=_number(
            name, "min_poll_interval_seconds", 1.0, minimum=0, integer=False
        ),
        default_poll_interval_seconds=_number(
            name, "default_poll_interval_seconds", 10.0, minimum=0, integer=False
        ),
        max_poll_interval_seconds=_number(
            name, "max_poll_interval_seconds", 300.0, minimum=0, integer=False
        ),
        max_poll_wait_seconds=_number(
            name, "max_poll_wait_seconds", 3600.0, minimum=0, integer=False
        ),
        max_poll_errors=_number(name, "max_poll_errors", 8, minimum=1, integer=True),
        download_concurrency=_number(name, "download_concurrency", 2, minimum=1, integer=True),
        download_attempts=_number(name, "download_attempts", 3, minimum=1, integer=True),
        allow_other_output_hosts=_flag(name, "allow_other_output_hosts", False),
        send_token_to_other_hosts=_flag(name, "send_token_to_other_hosts", False),
        merge_batch_resources=_number(
            name, "merge_batch_resources", 50_000, minimum=1, integer=True
        ),
        delete_job_when_done=_flag(name, "delete_job_when_done", True),
        rate_limit=None
        if rate_limit is None
        else _number(name, "rate_limit", 0, minimum=1, integer=True),
        rate_limit_period_seconds=_number(
            name, "rate_limit_period_seconds", 60.0, minimum=0.001, integer=False
        ),
        headroom=headroom,
        max_attempts=_number(name, "max_attempts", 8, minimum=1, integer=True),
        max_elapsed_seconds=_number(name, "max_elapsed_seconds", 600.0, minimum=1, integer=False),
        max_retry_after_seconds=_number(
            name, "max_retry_after_seconds", 900.0, minimum=0, integer=False
        ),
        retry_base_delay=_number(name, "retry_base_delay", 0.5, minimum=0, integer=False),
        retry_max_delay=_number(name, "retry_max_delay", 60.0, minimum=0, integer=False),
        connect_timeout=_number(name, "connect_timeout", 30.0, minimum=0.01, integer=False),
        read_timeout=_number(name, "read_timeout", 300.0, minimum=0.01, integer=False),
        circuit_breaker_threshold=_number(
            name, "circuit_breaker_threshold", 10, minimum=1, integer=True
        ),
    )
