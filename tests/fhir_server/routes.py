"""Request routing of the test server: every endpoint turns a :class:`Request` into a
:class:`Response`; faults and the socket are the HTTP layer's business (``server.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from email.message import Message
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from tests.fhir_server.auth import IssuedToken, TokenError, scopes_allow
from tests.fhir_server.bulk_urls import BULK_KINDS, bulk_kind
from tests.fhir_server.documents import (
    capability_statement,
    operation_outcome,
    outcome_entry,
    smart_configuration,
)
from tests.fhir_server.fhirtime import format_instant
from tests.fhir_server.search import (
    COMPARTMENT_TYPES,
    KNOWN_TYPES,
    ParsedSearch,
    SearchError,
    SearchQuery,
    evaluate,
    parse_count,
    parse_search,
    patient_reference,
    subset,
)
from tests.fhir_server.store import Entry, Resource

if TYPE_CHECKING:
    from tests.fhir_server.scenario import Scenario
    from tests.fhir_server.server import FhirTestServer

FHIR_JSON = "application/fhir+json; charset=utf-8"
JSON = "application/json; charset=utf-8"
FHIR_PREFIX = "/fhir"
TOKEN_PATH = "/auth/token"
JWKS_PATH = "/auth/jwks"
METADATA_PATHS = frozenset(
    {
        "/fhir/metadata",
        "/fhir/.well-known/smart-configuration",
        "/.well-known/smart-configuration",
    }
)


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as the router sees it.

    Attributes:
        method: HTTP method.
        path: Percent-decoded path.
        query: Raw query string.
        headers: Request headers.
        body: Request body (``b""`` when none).
    """

    method: str
    path: str
    query: str
    headers: Message
    body: bytes = b""

    @property
    def kind(self) -> str:
        """``token``, ``metadata``, a Bulk Data kind (``bulk_kickoff``, ``bulk_status``,
        ``bulk_manifest``, ``bulk_file``, ``bulk_delete``), ``data`` (anything else under
        /fhir) or ``other``."""
        if self.path == TOKEN_PATH:
            return "token"
        if self.path in METADATA_PATHS:
            return "metadata"
        if self.path == FHIR_PREFIX or self.path.startswith(FHIR_PREFIX + "/"):
            return bulk_kind(self.method, self.path[len(FHIR_PREFIX) :]) or "data"
        return "other"

    @property
    def is_data(self) -> bool:
        """A ``/fhir`` request other than metadata: search, read or Bulk Data."""
        return self.kind == "data" or self.kind in BULK_KINDS


@dataclass
class Response:
    """A response before it hits the socket.

    Attributes:
        status: HTTP status.
        body: Exact bytes to send (``Content-Length`` is their length).
        content_type: ``Content-Type`` header.
        headers: Extra headers.
        fault: Fault label for the request log (``malformed``...).
        reset: Send the full ``Content-Length`` and half the body, then reset the connection.
        chunked: Send the body with ``Transfer-Encoding: chunked`` (no ``Content-Length``).
    """

    status: int
    body: bytes = b""
    content_type: str = FHIR_JSON
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    reset: bool = False
    chunked: bool = False


def json_response(
    status: int,
    document: Any,
    *,
    content_type: str = FHIR_JSON,
    headers: dict[str, str] | None = None,
) -> Response:
    """Serialise ``document`` with orjson."""
    return Response(status, orjson.dumps(document), content_type, dict(headers or {}))


def outcome_response(
    status: int, code: str, diagnostics: str, headers: dict[str, str] | None = None
) -> Response:
    """An error answered with an OperationOutcome."""
    return json_response(status, operation_outcome(code, diagnostics), headers=headers)


class Router:
    """Endpoints of a :class:`FhirTestServer`."""

    def __init__(self, server: FhirTestServer) -> None:
        self.server = server

    # -- dispatch --------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Answer one request (without faults)."""
        kind = request.kind
        if kind == "token":
            return self._token(request)
        if kind in BULK_KINDS:
            try:
                return self.server.bulk_routes.dispatch(request, kind)
            except Denied as denied:
                return denied.response
        if request.method not in ("GET", "POST"):
            return outcome_response(405, "not-supported", f"{request.method} not supported")
        if kind == "metadata":
            return self._metadata(request)
        if request.path == JWKS_PATH:
            return json_response(200, self.server.registered_jwks(), content_type=JSON)
        if kind != "data":
            return outcome_response(404, "not-found", f"no endpoint at {request.path}")
        try:
            return self._data(request)
        except SearchError as exc:
            return outcome_response(exc.status, exc.code, exc.message)

    def _data(self, request: Request) -> Response:
        parts = [p for p in request.path[len(FHIR_PREFIX) :].split("/") if p]
        params = parse_qsl(request.query, keep_blank_values=True)
        if not parts:
            if any(name == "_getpages" for name, _ in params):
                return self._page(request, params)
            return outcome_response(400, "not-supported", "system-level search not supported")
        rtype = parts[0]
        if rtype == "Group" and len(parts) == 2 and request.method == "GET":
            try:
                return self.server.bulk_routes.read_group(request, parts[1])
            except Denied as denied:
                return denied.response
        if rtype not in KNOWN_TYPES and rtype not in self.server.store.types():
            return outcome_response(404, "not-supported", f"unknown resource type {rtype!r}")
        if len(parts) == 1 and request.method == "GET":
            return self._search(request, rtype, params)
        if len(parts) == 2 and parts[1] == "_search" and request.method == "POST":
            form = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            return self._search(request, rtype, params + form)
        if len(parts) == 2 and request.method == "GET":
            return self._read(request, rtype, parts[1])
        if len(parts) == 3 and rtype == "Patient" and parts[2] == "$everything":
            return self._everything(request, parts[1], params)
        return outcome_response(404, "not-found", f"no endpoint at {request.path}")

    # -- authorization ---------------------------------------------------------------------

    def _authorize(self, request: Request, resource_type: str, permission: str) -> None:
        """Raise a 401/403 :class:`Denied` unless the bearer token allows the access."""
        issued = self.authenticate(request)
        if issued is not None and not scopes_allow(issued.scopes, resource_type, permission):
            raise Denied(
                outcome_response(
                    403, "forbidden", f"token scopes do not allow {permission} on {resource_type}"
                )
            )

    def authenticate(self, request: Request) -> IssuedToken | None:
        """The request's valid bearer token (``None`` when auth is not required).

        Raises:
            Denied: 401 for a missing, unknown or expired token.
        """
        if not self.server.auth.required:
            return None
        token = bearer_token(request.headers)
        reason = None
        issued = None
        if token is None:
            reason = "missing bearer token"
        else:
            issued = self.server.tokens.lookup(token)
            if issued is None:
                reason = "unknown access token"
            elif self.server.tokens.is_expired(issued):
                reason = "access token expired"
        if reason is not None or issued is None:
            challenge = (
                f'Bearer realm="fhir-test-server", error="invalid_token", '
                f'error_description="{reason}"'
            )
            raise Denied(
                outcome_response(401, "login", str(reason), {"WWW-Authenticate": challenge})
            )
        return issued

    def allowed_types(self, request: Request) -> set[str] | None:
        """Types the request's token may read (``None``: no auth required)."""
        if not self.server.auth.required:
            return None
        token = bearer_token(request.headers)
        issued = self.server.tokens.lookup(token) if token else None
        scopes = issued.scopes if issued else frozenset()
        return {t for t in KNOWN_TYPES | self.server.store.types() if scopes_allow(scopes, t, "r")}

    # -- endpoints -------------------------------------------------------------------------

    def _metadata(self, request: Request) -> Response:
        server = self.server
        if request.path.endswith("smart-configuration"):
            return json_response(200, smart_configuration(server.token_url), content_type=JSON)
        types = sorted(KNOWN_TYPES | server.store.types())
        document = capability_statement(
            types, server.scenario, server.token_url, format_instant(server.now())
        )
        server.bulk_routes.declare(document)
        return json_response(200, document)

    def _token(self, request: Request) -> Response:
        server = self.server
        if request.method != "POST":
            body = {"error": "invalid_request", "error_description": "use POST"}
            return json_response(405, body, content_type=JSON)
        content_type = request.headers.get("Content-Type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            server.stats.incr("token_errors")
            body = {"error": "invalid_request", "error_description": "form-encoded body required"}
            return json_response(400, body, content_type=JSON)
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            document, _ = server.tokens.issue(
                form,
                request.headers.get("Authorization"),
                server.token_url,
                server.scenario.token_lifetime_seconds,
            )
        except TokenError as exc:
            server.stats.incr("token_errors")
            headers = {}
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="fhir-test-server"'
            return json_response(exc.status, exc.body(), content_type=JSON, headers=headers)
        server.stats.incr("tokens_issued")
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        return json_response(200, document, content_type=JSON, headers=no_store)

    def _read(self, request: Request, rtype: str, rid: str) -> Response:
        try:
            self._authorize(request, rtype, "r")
        except Denied as denied:
            return denied.response
        entry = self.server.store.get(rtype, rid)
        if entry is None:
            if self.server.store.deleted_version(rtype, rid) is not None:
                return outcome_response(410, "deleted", f"{rtype}/{rid} was deleted")
            return outcome_response(404, "not-found", f"{rtype}/{rid} not found")
        headers = {
            "ETag": f'W/"{entry.version_id}"',
            "Last-Modified": format_datetime(entry.last_updated, usegmt=True),
        }
        return json_response(200, entry.resource, headers=headers)

    def _search(self, request: Request, rtype: str, params: list[tuple[str, str]]) -> Response:
        try:
            self._authorize(request, rtype, "s")
        except Denied as denied:
            return denied.response
        query = SearchQuery.build(rtype, params)
        self_url = f"{self.server.base_url}/{query.path()}"
        if query.params or query.count is not None:
            self_url += f"?{query.query_string()}"
        return self._serve_page(request, query, offset=0, count=query.count, page=1, url=self_url)

    def _everything(self, request: Request, pid: str, params: list[tuple[str, str]]) -> Response:
        try:
            self._authorize(request, "Patient", "r")
        except Denied as denied:
            return denied.response
        query = SearchQuery.build("Patient", params, patient_id=pid)
        self_url = f"{self.server.base_url}/{query.path()}"
        if query.params or query.count is not None:
            self_url += f"?{query.query_string()}"
        return self._serve_page(request, query, offset=0, count=query.count, page=1, url=self_url)

    def _page(self, request: Request, params: list[tuple[str, str]]) -> Response:
        values = dict(params)
        query = SearchQuery.decode(values["_getpages"])
        try:
            offset = int(values.get("_offset", "0"))
            page = int(values["_page"]) if "_page" in values else None
        except ValueError as exc:
            raise SearchError(400, "invalid", "invalid _offset/_page") from exc
        if offset < 0:
            raise SearchError(400, "invalid", "invalid _offset")
        count = parse_count(values["_count"]) if "_count" in values else query.count
        if page is None:
            page = offset // max(count or self.server.scenario.default_page_size, 1) + 1
        permission = "r" if query.patient_id is not None else "s"
        try:
            self._authorize(request, query.resource_type, permission)
        except Denied as denied:
            return denied.response
        url = f"{self.server.base_url}?{request.query}"
        return self._serve_page(request, query, offset=offset, count=count, page=page, url=url)

    # -- paging ----------------------------------------------------------------------------

    def _results(
        self, request: Request, query: SearchQuery, scenario: Scenario
    ) -> tuple[ParsedSearch, list[Entry]]:
        parsed = parse_search(query, scenario)
        store = self.server.store
        if query.patient_id is None:
            return parsed, evaluate(store.entries(query.resource_type), parsed)
        patient = store.get("Patient", query.patient_id)
        if patient is None:
            raise SearchError(404, "not-found", f"Patient/{query.patient_id} not found")
        ref = f"Patient/{query.patient_id}"
        candidates = [patient] + [
            e
            for rtype in sorted(COMPARTMENT_TYPES | store.types())
            if rtype != "Patient"
            for e in store.entries(rtype)
            if patient_reference(e.resource) == ref
        ]
        allowed = self.allowed_types(request)
        candidates = [
            e
            for e in candidates
            if (parsed.types is None or e.key[0] in parsed.types)
            and (allowed is None or e.key[0] in allowed)
        ]
        return parsed, evaluate(candidates, parsed)

    def _serve_page(
        self,
        request: Request,
        query: SearchQuery,
        *,
        offset: int,
        count: int | None,
        page: int,
        url: str,
    ) -> Response:
        server = self.server
        scenario = server.scenario
        parsed, results = self._results(request, query, scenario)
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": format_instant(server.now())},
            "type": "searchset",
            "total": len(results),
            "link": [{"relation": "self", "url": url}],
        }
        entries: list[dict[str, Any]] = []
        if parsed.unknown:
            message = f"unknown search parameters ignored: {', '.join(parsed.unknown)}"
            entries.append(outcome_entry("not-supported", message, "warning"))
        if parsed.summary_count:
            if entries:
                bundle["entry"] = entries
            server.stats.incr("pages_served")
            return json_response(200, bundle)
        base_count, size = page_size(scenario, count, page)
        window = results[offset : offset + size]
        next_offset = offset + len(window)
        has_next = bool(window) and next_offset < len(results)
        if has_next:
            next_url = (
                f"{server.base_url}?_getpages={query.encode()}&_offset={next_offset}"
                f"&_count={base_count}&_page={page + 1}"
            )
            bundle["link"].append({"relation": "next", "url": next_url})
        every = scenario.outcome_entry_every_n_pages
        if every and page % every == 0:
            entries.append(outcome_entry("informational", f"page {page} served", "information"))
        served = window
        if scenario.repeat_page == (query.label, page) and offset > 0:
            served = results[max(0, offset - size) : offset]  # the previous page, again
            server.stats.incr("repeated_pages")
        entries.extend(self._match_entry(e, query, parsed.elements, page) for e in served)
        if scenario.include_entries:
            entries.extend(self._include_entries(served))
        if entries:
            bundle["entry"] = entries
        body = orjson.dumps(bundle)
        server.stats.incr("pages_served")
        server.stats.incr("resources_served", len(served))
        response = Response(200, body)
        if scenario.malformed_page == (query.label, page):
            response.body = body[: len(body) // 2]
            response.fault = "malformed"
            server.stats.incr("malformed_pages")
        if has_next and scenario.update_while_paging > 0 and query.patient_id is None:
            passed = results[:next_offset]
            for index in sorted(scenario.sample(len(passed), scenario.update_while_paging)):
                rtype, rid = passed[index].key
                try:
                    server.update(rtype, rid)
                except KeyError:
                    continue
                server.stats.incr("updates_while_paging")
        return response

    def _match_entry(
        self, entry: Entry, query: SearchQuery, elements: set[str] | None, page: int
    ) -> dict[str, Any]:
        resource: Resource = entry.resource
        rename = self.server.scenario.rename_field
        if rename is not None:
            rtype, old, new, rename_page = rename
            if query.label == rtype and resource["resourceType"] == rtype and page == rename_page:
                resource = {(new if k == old else k): v for k, v in resource.items()}
        if elements is not None:
            resource = subset(resource, elements)
        return {
            "fullUrl": f"{self.server.base_url}/{entry.key[0]}/{entry.key[1]}",
            "resource": resource,
            "search": {"mode": "match"},
        }

    def _include_entries(self, window: list[Entry]) -> list[dict[str, Any]]:
        seen = {e.key for e in window}
        included = []
        for entry in window:
            ref = patient_reference(entry.resource)
            if not ref or not ref.startswith("Patient/"):
                continue
            key = ("Patient", ref.split("/", 1)[1])
            patient = self.server.store.get(*key)
            if patient is None or key in seen:
                continue
            seen.add(key)
            included.append(
                {
                    "fullUrl": f"{self.server.base_url}/{ref}",
                    "resource": patient.resource,
                    "search": {"mode": "include"},
                }
            )
        return included


class Denied(Exception):
    """Carries the 401/403 response of a refused data request."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def bearer_token(headers: Message) -> str | None:
    """The bearer token of an ``Authorization`` header, if any."""
    value = headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def page_size(scenario: Scenario, requested: int | None, page: int) -> tuple[int, int]:
    """``(base size carried in next links, size of this page)``."""
    base = requested if requested is not None and not scenario.ignore_count else None
    if base is None:
        base = scenario.default_page_size
    base = max(1, min(base, scenario.max_page_size))
    size = base
    changes = scenario.page_size_changes or {}
    applicable = [p for p in changes if p <= page]
    if applicable:
        size = max(1, changes[max(applicable)])
    return base, size
