"""The FHIR R4 test server: a real HTTP server on 127.0.0.1 in a background thread.

Usage::

    with FhirTestServer(resources, scenario=Scenario(fraction_429=0.1)) as server:
        httpx.get(f"{server.base_url}/Patient", params={"_count": 50})
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import struct
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from tests.fhir_server.auth import ServerAuth, TokenService
from tests.fhir_server.bulk import BulkJobInfo
from tests.fhir_server.bulk_routes import BulkRoutes
from tests.fhir_server.documents import operation_outcome
from tests.fhir_server.routes import FHIR_JSON, Request, Response, Router, bearer_token
from tests.fhir_server.scenario import FaultPlan, Scenario
from tests.fhir_server.stats import RequestRecord, ServerStats
from tests.fhir_server.store import Key, Resource, ResourceStore, copy_resource

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_GROUP = "all"
# Bodies are written in slices of this size, so a large NDJSON file streams.
WRITE_CHUNK = 1 << 20
_GATEWAY_HTML = b"<html><body><h1>%d Gateway Error</h1></body></html>"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FhirTestServer:
    """In-memory FHIR R4 server with switchable faults, for integration tests.

    Args:
        resources: FHIR JSON resources with ``resourceType``, ``id``, ``meta.versionId`` and
            ``meta.lastUpdated``; the highest version per ``(type, id)`` is kept (copied).
        scenario: Faults and capabilities (default: a well-behaved server).
        auth: Token endpoint clients and whether data requests need a token.
        clock: Server clock (default: real UTC time); drives ``Date``, token expiry and
            ``lastUpdated`` stamps.
        groups: Group id -> member Patient ids, for ``Group/{id}/$export`` and Group reads
            (default: one Group ``all`` holding every current Patient).
    """

    def __init__(
        self,
        resources: Iterable[Resource],
        scenario: Scenario | None = None,
        auth: ServerAuth | None = None,
        clock: Callable[[], datetime] | None = None,
        groups: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.store = ResourceStore(resources, clock or _utc_now)
        self._groups: dict[str, list[str]] | None = None
        if groups is not None:
            self._groups = {gid: list(members) for gid, members in groups.items()}
        self.scenario = scenario or Scenario()
        self.auth = auth or ServerAuth()
        self.tokens = TokenService(self.auth, self.now)
        self.stats = ServerStats()
        self.errors: list[str] = []
        self._router = Router(self)
        self.bulk_routes = BulkRoutes(self, self._router)
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FhirTestServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._stop.clear()
        self._httpd = _HttpServer((HOST, 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"fhir-test-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and wake sleeping (slow) handlers."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stop.set()
        httpd.shutdown()
        httpd.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> FhirTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """Bound TCP port (only while started)."""
        if self._httpd is None:
            raise RuntimeError("server not started; use `with FhirTestServer(...) as server`")
        return int(self._httpd.server_address[1])

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """FHIR base URL, ``http://127.0.0.1:PORT/fhir``."""
        return f"{self.origin}/fhir"

    @property
    def token_url(self) -> str:
        """Token endpoint, ``http://127.0.0.1:PORT/auth/token``."""
        return f"{self.origin}/auth/token"

    @property
    def jwks_url(self) -> str:
        """JWK set of the registered clients' public keys (for inspection)."""
        return f"{self.origin}/auth/jwks"

    # -- data API --------------------------------------------------------------------------

    def now(self) -> datetime:
        """The server clock (aware UTC)."""
        return self.store.now()

    def truth(self, resource_type: str | None = None) -> dict[Key, tuple[str, str]]:
        """``(type, id) -> (versionId, lastUpdated)`` of the current versions."""
        return {
            e.key: (e.version_id, str(e.resource["meta"]["lastUpdated"]))
            for e in self.store.entries(resource_type)
        }

    def resources(self, resource_type: str) -> list[Resource]:
        """Copies of the current resources of a type, ordered by id."""
        entries = sorted(self.store.entries(resource_type), key=lambda e: e.key)
        return [copy_resource(e.resource) for e in entries]

    def get(self, resource_type: str, resource_id: str) -> Resource | None:
        """Copy of the current version, or ``None``."""
        entry = self.store.get(resource_type, resource_id)
        return None if entry is None else copy_resource(entry.resource)

    def update(
        self,
        resource_type: str,
        resource_id: str,
        mutate: Callable[[Resource], None] | None = None,
    ) -> Resource:
        """New version: ``mutate`` a copy, versionId + 1, lastUpdated strictly after any seen.

        Raises:
            KeyError: No such current resource.
        """
        return self.store.update(resource_type, resource_id, mutate)

    def add(self, resource: Resource) -> Resource:
        """Create a resource (versionId 1, lastUpdated stamped now); returns the stored copy.

        Raises:
            ValueError: It already exists.
        """
        return self.store.add(resource)

    def delete(self, resource_type: str, resource_id: str) -> None:
        """Delete a resource (reads answer 410, searches skip it).

        Raises:
            KeyError: No such current resource.
        """
        self.store.delete(resource_type, resource_id)

    def group_members(self, group_id: str) -> list[str] | None:
        """Member Patient ids of a Group, or ``None`` when there is no such Group."""
        if self._groups is None:
            if group_id != DEFAULT_GROUP:
                return None
            return sorted(e.key[1] for e in self.store.entries("Patient"))
        members = self._groups.get(group_id)
        return None if members is None else list(members)

    def set_group(self, group_id: str, patient_ids: Iterable[str]) -> None:
        """Create or replace a Group (the default Group ``all`` then no longer exists unless
        it is set too)."""
        if self._groups is None:
            self._groups = {}
        self._groups[group_id] = list(patient_ids)

    # -- observability ---------------------------------------------------------------------

    def bulk_jobs(self) -> dict[str, BulkJobInfo]:
        """Every Bulk Data export job so far (deleted ones included), in kick-off order."""
        return self.bulk_routes.jobs.info(self.now())

    @property
    def request_log(self) -> list[RequestRecord]:
        """Copy of the request log, in completion order."""
        with self._log_lock:
            return list(self._log)

    def registered_jwks(self) -> dict[str, Any]:
        """Public JWKs of every registered client (PEM keys converted)."""
        return self.auth.public_jwks()

    # -- request handling (called from handler threads) -----------------------------------

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _handle(self, handler: _Handler) -> None:
        arrived = self.now()
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        request = Request(handler.command, unquote(url.path), url.query, handler.headers, body)
        kind = request.kind
        self.stats.incr("requests")
        if request.is_data:
            self.stats.incr("data_requests")
        scenario = self.scenario
        plan = FaultPlan()
        if (
            request.is_data
            or kind == "token"
            or (kind == "metadata" and scenario.faults_on_metadata)
        ):
            plan = scenario.plan(token_request=kind == "token")
        if plan.status is not None:
            response = self._fault_response(plan, scenario)
        else:
            try:
                response = self._router.dispatch(request)
            except Exception:
                self.stats.incr("internal_errors")
                self.errors.append(traceback.format_exc())
                logger.exception("test server error on %s %s", request.method, request.path)
                response = Response(
                    500, orjson.dumps(operation_outcome("exception", "internal server error"))
                )
        fault = plan.reason or response.fault
        if plan.slow_seconds > 0:
            self.stats.incr("slow_responses")
            fault = fault or "slow"
            self._stop.wait(plan.slow_seconds)
        if plan.reset:
            self.stats.incr("resets")
            fault = "reset" if fault is None else f"{fault}+reset"
        self.stats.record_status(response.status)
        self._record(request, response.status, arrived, fault, kind)
        handler.send(response, reset=plan.reset)

    def _fault_response(self, plan: FaultPlan, scenario: Scenario) -> Response:
        assert plan.status is not None
        headers: dict[str, str] = {}
        if plan.retry_after is not None:
            seconds = max(0, math.ceil(plan.retry_after))
            if scenario.retry_after_http_date:
                at = self.now().replace(microsecond=0) + timedelta(seconds=seconds + 1)
                headers["Retry-After"] = format_datetime(at, usegmt=True)
            else:
                headers["Retry-After"] = str(seconds)
        if plan.status in (502, 504):
            return Response(
                plan.status, _GATEWAY_HTML % plan.status, "text/html; charset=utf-8", headers
            )
        code = "throttled" if plan.status == 429 else "transient"
        document = operation_outcome(code, f"simulated {plan.status} ({plan.reason})")
        return Response(plan.status, orjson.dumps(document), FHIR_JSON, headers)

    def _record(
        self, request: Request, status: int, arrived: datetime, fault: str | None, kind: str
    ) -> None:
        token = bearer_token(request.headers)
        token_id = None
        if token is not None:
            issued = self.tokens.lookup(token)
            token_id = issued.token_id if issued else "unknown"
        record = RequestRecord(
            request.method, request.path, request.query, status, arrived, token_id, fault, kind
        )
        with self._log_lock:
            self._log.append(record)


class _HttpServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its :class:`FhirTestServer`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], app: FhirTestServer
    ) -> None:
        self.app = app
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log handler crashes instead of printing them to stderr."""
        logger.debug("connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler; every response has a Content-Length and a Date."""

    protocol_version = "HTTP/1.1"
    server_version = "FhirTestServer/1.0"
    timeout = 60
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.app._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.app._track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self.server.app._handle(self)

    def do_POST(self) -> None:
        self.server.app._handle(self)

    def do_PUT(self) -> None:
        self.server.app._handle(self)

    def do_DELETE(self) -> None:
        self.server.app._handle(self)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """``Date`` header from the server clock."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        return format_datetime(self.server.app.now().replace(microsecond=0), usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    def send(self, response: Response, *, reset: bool = False) -> None:
        """Write ``response``; with ``reset`` (or ``response.reset``), only half the body,
        then an abrupt close; with ``response.chunked``, chunked transfer encoding."""
        reset = reset or response.reset
        chunked = response.chunked and not reset
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if reset:
                self.wfile.write(response.body[: len(response.body) // 2])
                self.wfile.flush()
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
                return
            body = memoryview(response.body)
            for start in range(0, len(body), WRITE_CHUNK):
                piece = body[start : start + WRITE_CHUNK]
                if chunked:
                    self.wfile.write(b"%x\r\n" % len(piece) + piece.tobytes() + b"\r\n")
                else:
                    self.wfile.write(piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # client went away (timeout) or the server is stopping
            self.server.app.stats.incr("client_disconnects")
            self.close_connection = True
