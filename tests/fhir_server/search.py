"""Search parameters of the test server: parsing, filtering and ordering.

A :class:`SearchQuery` is what a client asked for (type search or ``$everything``); it is
re-evaluated against live data on every page request, so paging is offset-based over a
moving result set, as on several real servers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from tests.fhir_server.fhirtime import FhirDateError, matches, parse_search_date, split_prefix
from tests.fhir_server.scenario import Scenario
from tests.fhir_server.store import Entry, Resource

# Types with a patient compartment link (subject or patient reference) in R4.
COMPARTMENT_TYPES: frozenset[str] = frozenset(
    {
        "AllergyIntolerance",
        "Condition",
        "DiagnosticReport",
        "Encounter",
        "Immunization",
        "MedicationDispense",
        "MedicationRequest",
        "Observation",
        "Procedure",
    }
)
# Elements behind the ``date`` search parameter (a resource matches if any value matches).
DATE_ELEMENTS: dict[str, tuple[str, ...]] = {
    "AllergyIntolerance": ("recordedDate",),
    "Condition": ("recordedDate", "onsetDateTime"),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod.start"),
    "Encounter": ("period.start",),
    "Immunization": ("occurrenceDateTime",),
    "MedicationDispense": ("whenHandedOver",),
    "MedicationRequest": ("authoredOn",),
    "Observation": ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant"),
    "Procedure": ("performedDateTime", "performedPeriod.start"),
}
KNOWN_TYPES: frozenset[str] = COMPARTMENT_TYPES | {
    "Location",
    "Organization",
    "Patient",
    "Practitioner",
}
SORTS: frozenset[str] = frozenset({"_lastUpdated", "-_lastUpdated", "_id", "-_id"})
# Accepted everywhere and without effect.
NEUTRAL_PARAMS: frozenset[str] = frozenset({"_format", "_pretty", "_total"})
SUBSETTED_TAG: dict[str, str] = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
EVERYTHING = "$everything"


class SearchError(Exception):
    """A search the server refuses (answered with an OperationOutcome)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What the client asked for, minus paging.

    Attributes:
        resource_type: Type searched (``Patient`` for ``$everything``).
        params: Query parameters in order, without ``_count``.
        count: ``_count`` as requested (``None``: absent).
        patient_id: Patient of a ``$everything`` request, else ``None``.
    """

    resource_type: str
    params: tuple[tuple[str, str], ...]
    count: int | None = None
    patient_id: str | None = None

    @property
    def label(self) -> str:
        """Type name, or ``$everything`` (what ``rename_field``/``malformed_page`` match)."""
        return EVERYTHING if self.patient_id is not None else self.resource_type

    def path(self) -> str:
        """Path below the base URL (``Patient`` or ``Patient/x/$everything``)."""
        if self.patient_id is not None:
            return f"Patient/{self.patient_id}/{EVERYTHING}"
        return self.resource_type

    def query_string(self, *, with_count: bool = True) -> str:
        """The original query string (``_count`` included unless asked otherwise)."""
        params = list(self.params)
        if with_count and self.count is not None:
            params.append(("_count", str(self.count)))
        return urlencode(params)

    def encode(self) -> str:
        """Opaque ``_getpages`` token: urlsafe base64 of ``path?query``, unpadded."""
        raw = f"{self.path()}?{self.query_string()}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> SearchQuery:
        """Inverse of :meth:`encode`.

        Raises:
            SearchError: The token is not one this server issued.
        """
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise SearchError(400, "invalid", "invalid _getpages token") from exc
        path, _, query = raw.partition("?")
        parts = path.split("/")
        params = parse_qsl(query, keep_blank_values=True)
        if len(parts) == 1 and parts[0]:
            return cls.build(parts[0], params)
        if len(parts) == 3 and parts[0] == "Patient" and parts[2] == EVERYTHING:
            return cls.build("Patient", params, patient_id=parts[1])
        raise SearchError(400, "invalid", "invalid _getpages token")

    @classmethod
    def build(
        cls,
        resource_type: str,
        params: list[tuple[str, str]],
        patient_id: str | None = None,
    ) -> SearchQuery:
        """Split ``_count`` off the parameters.

        Raises:
            SearchError: ``_count`` is not a non-negative integer.
        """
        count: int | None = None
        rest: list[tuple[str, str]] = []
        for name, value in params:
            if name == "_count":
                count = parse_count(value)
            else:
                rest.append((name, value))
        return cls(resource_type, tuple(rest), count, patient_id)


def parse_count(value: str) -> int:
    """Parse ``_count``.

    Raises:
        SearchError: Not a non-negative integer.
    """
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise SearchError(400, "invalid", f"_count must be a non-negative integer: {value!r}")
    return count


@dataclass
class ParsedSearch:
    """A query turned into filters and presentation options.

    Attributes:
        filters: Every filter must accept an entry.
        sort: ``_sort`` value applied (``None``: by type then id).
        summary_count: ``_summary=count`` (or ``_count=0``): total only.
        elements: Top-level elements kept (``None``: whole resources).
        unknown: Parameter names ignored because the server does not know them.
        types: ``$everything`` only: types to include (``None``: all).
    """

    filters: list[Callable[[Entry], bool]] = field(default_factory=list)
    sort: str | None = None
    summary_count: bool = False
    elements: set[str] | None = None
    unknown: list[str] = field(default_factory=list)
    types: set[str] | None = None


def _get_path(resource: Resource, dotted: str) -> Any:
    node: Any = resource
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _date_values(entry: Entry, elements: tuple[str, ...]) -> list[datetime]:
    values: list[datetime] = []
    for element in elements:
        raw = _get_path(entry.resource, element)
        if isinstance(raw, str):
            try:
                values.append(parse_search_date(raw)[0])
            except FhirDateError:
                continue
    return values


def _date_filter(
    name: str, value: str, getter: Callable[[Entry], list[datetime]]
) -> Callable[[Entry], bool]:
    alternatives = []
    for item in value.split(","):
        prefix, raw = split_prefix(item)
        try:
            low, high = parse_search_date(raw)
        except FhirDateError as exc:
            raise SearchError(400, "invalid", f"{name}: {exc}") from exc
        alternatives.append((prefix, low, high))

    def accept(entry: Entry) -> bool:
        instants = getter(entry)
        return any(
            matches(instant, prefix, low, high)
            for instant in instants
            for prefix, low, high in alternatives
        )

    return accept


def _patient_ids(value: str) -> set[str]:
    ids = set()
    for item in value.split(","):
        item = item.strip()
        ids.add(item.rsplit("/", 1)[-1] if "/" in item else item)
    return ids


def _patient_filter(resource_type: str, value: str) -> Callable[[Entry], bool]:
    ids = _patient_ids(value)
    if resource_type == "Patient":
        return lambda entry: entry.resource["id"] in ids
    refs = {f"Patient/{pid}" for pid in ids}

    def accept(entry: Entry) -> bool:
        return patient_reference(entry.resource) in refs

    return accept


def patient_reference(resource: Resource) -> str | None:
    """``subject.reference`` or ``patient.reference`` of a resource (``None`` if neither)."""
    for element in ("subject", "patient"):
        ref = resource.get(element)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            return str(ref["reference"])
    return None


def parse_search(query: SearchQuery, scenario: Scenario) -> ParsedSearch:
    """Turn a query's parameters into filters, honouring the scenario's capabilities.

    Raises:
        SearchError: A parameter value is invalid or the scenario refuses the parameter.
    """
    parsed = ParsedSearch()
    rtype = query.resource_type
    everything = query.patient_id is not None
    for name, value in query.params:
        base = name.split(":", 1)[0]
        if base in NEUTRAL_PARAMS:
            continue
        if base == "_lastUpdated" and not everything:
            if rtype in scenario.last_updated_unsupported:
                raise SearchError(400, "not-supported", f"_lastUpdated is not supported on {rtype}")
            parsed.filters.append(_date_filter(name, value, lambda e: [e.last_updated]))
        elif base == "_since" and everything:
            since = _date_filter(name, f"ge{value}", lambda e: [e.last_updated])
            parsed.filters.append(since)
        elif base == "_type" and everything:
            parsed.types = {t.strip() for t in value.split(",") if t.strip()}
        elif base == "_sort" and not everything:
            _apply_sort(parsed, value, scenario)
        elif base == "_summary" and not everything:
            if value == "count":
                parsed.summary_count = True
            elif value != "false":
                raise SearchError(400, "not-supported", f"_summary={value} is not supported")
        elif base == "_elements":
            parsed.elements = {e.strip() for e in value.split(",") if e.strip()}
        elif base == "_id" and not everything:
            ids = {i.strip() for i in value.split(",")}
            parsed.filters.append(lambda e, ids=ids: e.resource["id"] in ids)
        elif (
            base == "patient"
            and not everything
            and (rtype in COMPARTMENT_TYPES or rtype == "Patient")
        ):
            parsed.filters.append(_patient_filter(rtype, value))
        elif base == "date" and not everything and rtype in DATE_ELEMENTS:
            elements = DATE_ELEMENTS[rtype]
            parsed.filters.append(
                _date_filter(name, value, lambda e, els=elements: _date_values(e, els))
            )
        elif name not in parsed.unknown:
            parsed.unknown.append(name)
    if query.count == 0:
        parsed.summary_count = True
    return parsed


def _apply_sort(parsed: ParsedSearch, value: str, scenario: Scenario) -> None:
    if not scenario.supports_sort:
        if scenario.ignore_unsupported_sort:
            return
        raise SearchError(400, "not-supported", "_sort is not supported")
    if value not in SORTS:
        if scenario.ignore_unsupported_sort:
            return
        raise SearchError(400, "not-supported", f"_sort={value} is not supported")
    parsed.sort = value


def order(entries: list[Entry], sort: str | None) -> list[Entry]:
    """Order entries by ``sort`` (ties broken by id), else by type then id."""
    if sort in ("_lastUpdated", "-_lastUpdated"):
        ordered = sorted(entries, key=lambda e: (e.last_updated, e.key[1]))
        return ordered[::-1] if sort.startswith("-") else ordered
    ordered = sorted(entries, key=lambda e: e.key)
    return ordered[::-1] if sort == "-_id" else ordered


def evaluate(entries: list[Entry], parsed: ParsedSearch) -> list[Entry]:
    """Filter and order a snapshot of entries."""
    kept = [e for e in entries if all(accept(e) for accept in parsed.filters)]
    return order(kept, parsed.sort)


def subset(resource: Resource, elements: set[str]) -> Resource:
    """Keep ``resourceType``, ``id``, ``meta`` and ``elements``; tag it SUBSETTED."""
    kept = {k: v for k, v in resource.items() if k in elements or k in ("resourceType", "id")}
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED_TAG]
    kept["meta"] = meta
    return kept
