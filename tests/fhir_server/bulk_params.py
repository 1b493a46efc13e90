"""Kick-off parameters of a Bulk Data ``$export`` request: parsing and validation.

Parameters arrive in the query string (GET) or in a FHIR ``Parameters`` body (POST, where
query parameters are accepted too). Anything the server cannot honour is refused with 400,
as the Bulk Data IG asks, unless the client sent ``Prefer: handling=lenient``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl

import orjson

from tests.fhir_server.fhirtime import FhirDateError, parse_search_date
from tests.fhir_server.scenario import Scenario
from tests.fhir_server.search import ParsedSearch, SearchError, SearchQuery, parse_search

OUTPUT_FORMATS: frozenset[str] = frozenset(
    {"application/fhir+ndjson", "application/ndjson", "ndjson"}
)
KNOWN_PARAMS: frozenset[str] = frozenset(
    {
        "_type",
        "_since",
        "_outputFormat",
        "_typeFilter",
        "patient",
        "_elements",
        "includeAssociatedData",
        "allowPartialManifests",
        "organizeOutputBy",
    }
)
SYSTEM, PATIENT, GROUP = "system", "patient", "group"
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]*$")
# _typeFilter values may be comma-joined: split before each "Type?".
_TYPE_FILTER_SPLIT = re.compile(r",(?=[A-Z][A-Za-z]*\?)")
_BOOLEANS = {"true": True, "false": False}


class KickoffError(Exception):
    """A kick-off request the server refuses (answered with an OperationOutcome)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ExportParams:
    """What a kick-off request asked for.

    Attributes:
        level: ``system``, ``patient`` or ``group``.
        group_id: Group of a group-level export, else ``None``.
        types: ``_type`` (``None``: every type in scope).
        since: ``_since`` (``None``: everything; deleted entries only come with it).
        type_filters: ``_typeFilter`` queries by type; a resource of such a type is exported
            when any of its type's queries matches.
        patients: Patient ids of the POST ``patient`` parameter (``None``: all in scope).
        elements: ``_elements`` (``element`` for every type, ``Type.element`` for one).
        allow_partial_manifests: ``allowPartialManifests=true``.
        organize_by_patient: ``organizeOutputBy=Patient``.
        output_format: ``_outputFormat`` as sent (default ``application/fhir+ndjson``).
    """

    level: str
    group_id: str | None = None
    types: frozenset[str] | None = None
    since: datetime | None = None
    type_filters: dict[str, list[ParsedSearch]] = field(default_factory=dict)
    patients: frozenset[str] | None = None
    elements: frozenset[str] | None = None
    allow_partial_manifests: bool = False
    organize_by_patient: bool = False
    output_format: str = "application/fhir+ndjson"

    def elements_for(self, resource_type: str) -> set[str] | None:
        """Top-level elements kept for ``resource_type`` (``None``: whole resources)."""
        if self.elements is None:
            return None
        kept: set[str] = set()
        for item in self.elements:
            rtype, dot, element = item.partition(".")
            if not dot:
                kept.add(item)
            elif rtype == resource_type:
                kept.add(element)
        return kept or None


def check_headers(headers: Message) -> bool:
    """Validate ``Accept`` and ``Prefer``; return whether ``handling=lenient`` was asked.

    Raises:
        KickoffError: ``Prefer: respond-async`` or ``Accept: application/fhir+json`` missing.
    """
    prefer = [p.strip().lower() for p in (headers.get("Prefer") or "").split(",")]
    if "respond-async" not in prefer:
        raise KickoffError(400, "invalid", "$export needs the header Prefer: respond-async")
    accept = (headers.get("Accept") or "").lower()
    if "application/fhir+json" not in accept:
        raise KickoffError(400, "invalid", "$export needs the header Accept: application/fhir+json")
    return "handling=lenient" in prefer


def request_params(method: str, query: str, body: bytes) -> list[tuple[str, str]]:
    """The kick-off parameters: the query string, plus a POST ``Parameters`` body.

    Raises:
        KickoffError: A GET sent ``patient``, or the POST body is not a Parameters resource.
    """
    params = parse_qsl(query, keep_blank_values=True)
    if method == "GET":
        if any(name == "patient" for name, _ in params):
            raise KickoffError(400, "invalid", "patient is only accepted in a POST Parameters body")
        return params
    if not body.strip():
        return params
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise KickoffError(400, "invalid", "POST body is not JSON") from exc
    if not isinstance(document, dict) or document.get("resourceType") != "Parameters":
        raise KickoffError(400, "invalid", "POST body must be a Parameters resource")
    for index, parameter in enumerate(document.get("parameter") or []):
        params.append(_parameter(parameter, index))
    return params


def _parameter(parameter: Any, index: int) -> tuple[str, str]:
    where = f"Parameters.parameter[{index}]"
    if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
        raise KickoffError(400, "invalid", f"{where} needs a name")
    name = parameter["name"]
    if name == "patient":
        reference = (parameter.get("valueReference") or {}).get("reference")
        if not isinstance(reference, str):
            raise KickoffError(400, "invalid", f"{where}: patient needs valueReference.reference")
        return name, reference
    values = [v for k, v in parameter.items() if k.startswith("value")]
    if len(values) != 1:
        raise KickoffError(400, "invalid", f"{where} ({name}) needs exactly one value[x]")
    value = values[0]
    if isinstance(value, bool):
        return name, "true" if value else "false"
    if not isinstance(value, str | int | float):
        raise KickoffError(400, "invalid", f"{where} ({name}) needs a primitive value")
    return name, str(value)


def parse_export(
    level: str,
    group_id: str | None,
    params: list[tuple[str, str]],
    scenario: Scenario,
    *,
    lenient: bool = False,
) -> ExportParams:
    """Validate the kick-off parameters.

    Raises:
        KickoffError: An unknown parameter (unless lenient), a bad value, or a parameter
            that does not apply at this level.
    """
    types: set[str] | None = None
    since: datetime | None = None
    filters: dict[str, list[ParsedSearch]] = {}
    patients: set[str] | None = None
    elements: set[str] | None = None
    partial = False
    organize = False
    output_format = "application/fhir+ndjson"
    for name, value in params:
        if name == "_type":
            types = (types or set()) | _types(value)
        elif name == "_since":
            since = _since(value)
        elif name == "_outputFormat":
            if value not in OUTPUT_FORMATS:
                raise KickoffError(
                    400,
                    "not-supported",
                    f"_outputFormat {value!r} is not supported; "
                    f"use one of {', '.join(sorted(OUTPUT_FORMATS))}",
                )
            output_format = value
        elif name == "_typeFilter":
            for rtype, parsed in _type_filters(value, scenario, lenient):
                filters.setdefault(rtype, []).append(parsed)
        elif name == "patient":
            if level == SYSTEM:
                raise KickoffError(400, "invalid", "patient applies to Patient and Group exports")
            patients = (patients or set()) | {_patient_id(value)}
        elif name == "_elements":
            elements = (elements or set()) | {e.strip() for e in value.split(",") if e.strip()}
        elif name == "allowPartialManifests":
            partial = _boolean(name, value)
        elif name == "organizeOutputBy":
            if value != "Patient":
                raise KickoffError(400, "not-supported", "organizeOutputBy supports only Patient")
            organize = True
        elif name == "includeAssociatedData" or lenient:
            continue
        else:
            raise KickoffError(400, "not-supported", f"unknown $export parameter {name!r}")
    return ExportParams(
        level=level,
        group_id=group_id,
        types=None if types is None else frozenset(types),
        since=since,
        type_filters=filters,
        patients=None if patients is None else frozenset(patients),
        elements=None if elements is None else frozenset(elements),
        allow_partial_manifests=partial,
        organize_by_patient=organize,
        output_format=output_format,
    )


def _types(value: str) -> set[str]:
    names = {t.strip() for t in value.split(",") if t.strip()}
    bad = sorted(t for t in names if not _TYPE_NAME.match(t))
    if bad or not names:
        raise KickoffError(400, "invalid", f"_type must list resource types: {', '.join(bad)}")
    return names


def _since(value: str) -> datetime:
    try:
        return parse_search_date(value)[0]
    except FhirDateError as exc:
        raise KickoffError(400, "invalid", f"_since is not a FHIR instant: {exc}") from exc


def _boolean(name: str, value: str) -> bool:
    if value.lower() not in _BOOLEANS:
        raise KickoffError(400, "invalid", f"{name} must be true or false")
    return _BOOLEANS[value.lower()]


def _patient_id(reference: str) -> str:
    rtype, slash, pid = reference.partition("/")
    if rtype != "Patient" or not slash or not pid or "/" in pid:
        raise KickoffError(400, "invalid", "patient must be a reference of the form Patient/id")
    return pid


def _type_filters(value: str, scenario: Scenario, lenient: bool) -> list[tuple[str, ParsedSearch]]:
    parsed_filters = []
    for item in _TYPE_FILTER_SPLIT.split(value):
        rtype, question, query = item.partition("?")
        if not question or not _TYPE_NAME.match(rtype):
            raise KickoffError(400, "invalid", "_typeFilter values must look like Type?param=value")
        try:
            search = SearchQuery.build(rtype, parse_qsl(query, keep_blank_values=True))
            parsed = parse_search(search, scenario)
        except SearchError as exc:
            raise KickoffError(400, exc.code, f"_typeFilter on {rtype}: {exc.message}") from exc
        if parsed.unknown and not lenient:
            raise KickoffError(
                400,
                "not-supported",
                f"_typeFilter on {rtype}: unsupported parameters {', '.join(parsed.unknown)}",
            )
        parsed_filters.append((rtype, parsed))
    return parsed_filters
