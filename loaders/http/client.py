"""The HTTP client fhir-elt reads FHIR servers with: retries, pacing, auth refresh, no PHI.

One :class:`FhirHttpClient` per server and run; it is thread-safe, so extraction workers share
it (and its connection pool, token, rate budget and circuit breaker). Each logical request
(:meth:`FhirHttpClient.get_json`, :meth:`FhirHttpClient.send`, :meth:`FhirHttpClient.download`,
:meth:`FhirHttpClient.stream_to`) makes attempts until one succeeds or a rule stops it:

=====================================  =========================================================
Answer                                 What happens
=====================================  =========================================================
2xx, JSON object                       returned (an OperationOutcome with an error or fatal
                                       issue raises RequestRejected with its issue codes)
2xx, not a JSON object                 retried once (truncated transfer?), then
                                       MalformedResponseError
401                                    token invalidated, retried at once; a second 401 in the
                                       same call raises AuthenticationError
403                                    AuthorizationError, no retry
429, 500, 502, 503, 504, timeouts,     wait max(jittered backoff, Retry-After), retry until the
connection errors                      RetryPolicy's attempts or elapsed time run out, then
                                       RetriesExhausted
other 4xx / 5xx, redirects             RequestRejected, no retry
=====================================  =========================================================

:meth:`FhirHttpClient.send` (Bulk Data kick-off, status polls, DELETE) returns any 2xx as it
came (an empty 202 included) and hands the statuses its caller names in ``answer_statuses``
back unretried, so a status poll can read 429 and 5xx answers itself.
:meth:`FhirHttpClient.download` may fetch from another host (presigned storage URLs) when
asked; the access token goes to another host only when the caller says so explicitly.

Every attempt first passes the circuit breaker (per resource type), then takes a concurrency
slot, then a token from the rate bucket (in that order, so that requests queued behind slow
ones cannot leave in a burst), then an access token. Every attempt is reported to
``on_request`` as a :class:`~loaders.http.request_log.RequestRecord`.

Log lines and exception messages name the resource type, the path template and safe query
description, the status and the attempt count, never an id, a query value, a body or a token.
No exception raised here carries an httpx exception as its cause or context: those quote
URLs, and tracebacks get logged.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

import httpx
import orjson

from loaders.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ConfigError,
    ExtractError,
    MalformedResponseError,
    RequestRejected,
    RetriesExhausted,
)
from loaders.fhir.resource_types import is_known_resource_type
from loaders.http.auth import TokenProvider
from loaders.http.circuit_breaker import CircuitBreaker
from loaders.http.rate_limit import TokenBucket
from loaders.http.request_log import (
    Outcome,
    RequestRecord,
    describe_request,
    install_httpx_log_redaction,
    path_template,
    query_keys,
)
from loaders.http.retry import RetryPolicy, RetrySchedule, parse_http_date, parse_retry_after

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"
DEFAULT_USER_AGENT = "fhir-elt/0.1"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK_BYTES = 64 * 1024
_MAX_SCOPE_CHARS = 300

Params = Mapping[str, str | list[str]]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """httpx timeouts in seconds, generous for EHRs reached over slow VPN links.

    Attributes:
        connect: To establish a connection (VPN tunnels and TLS to a cloud EHR can be slow).
        read: Between two chunks of a response (large search pages are built slowly).
        write: Between two chunks of a request.
        pool: Waiting for a free connection in the pool.
    """

    connect: float = 30.0
    read: float = 120.0
    write: float = 60.0
    pool: float = 60.0

    def to_httpx(self) -> httpx.Timeout:
        """The equivalent :class:`httpx.Timeout`."""
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True, slots=True)
class FhirResponse:
    """A successful JSON response.

    Attributes:
        body: The parsed JSON object.
        raw: The body bytes as received (after content decoding), e.g. for a landing page.
        status: The HTTP status (2xx).
        headers: The response headers.
        request_id: The ``X-Request-Id`` of the successful attempt.
        elapsed_seconds: Time of the whole call, retries and waits included.
        attempts: Attempts made, the successful one included.
        server_date: The server's ``Date`` header, if readable.
    """

    body: dict[str, Any]
    raw: bytes
    status: int
    headers: httpx.Headers
    request_id: str
    elapsed_seconds: float
    attempts: int
    server_date: datetime | None

    def __repr__(self) -> str:
        # The body is PHI: keep it out of reprs (assertion messages, debug logs).
        return (
            f"FhirResponse(status={self.status}, bytes={len(self.raw)}, "
            f"request_id={self.request_id!r}, attempts={self.attempts})"
        )


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """Any answer :meth:`FhirHttpClient.send` returns: a 2xx, or a status the caller asked for.

    Attributes:
        status: The HTTP status.
        headers: The response headers.
        raw: The body bytes (possibly empty).
        request_id: The ``X-Request-Id`` of the attempt that got this answer.
        attempts: Attempts made, this one included.
        server_date: The server's ``Date`` header, if readable.
    """

    status: int
    headers: httpx.Headers
    raw: bytes
    request_id: str
    attempts: int
    server_date: datetime | None

    def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None when it is empty or not one."""
        body, _ = _json_object(self.raw) if self.raw else (None, "")
        return body

    def issue_codes(self) -> list[str]:
        """Issue codes of an OperationOutcome body (never its diagnostics); [] otherwise."""
        body = self.json_object()
        return _issue_codes(body, errors_only=False) if body is not None else []

    def __repr__(self) -> str:
        return (
            f"HttpAnswer(status={self.status}, bytes={len(self.raw)}, "
            f"request_id={self.request_id!r}, attempts={self.attempts})"
        )


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """What :meth:`FhirHttpClient.download` wrote.

    Attributes:
        size: Body bytes written to the sink.
        request_id: The ``X-Request-Id`` of the successful attempt.
        attempts: Attempts made, the successful one included.
        headers: The response headers of the successful attempt.
    """

    size: int
    request_id: str
    attempts: int
    headers: httpx.Headers


@dataclass(frozen=True, slots=True)
class ClientCounters:
    """Totals over a client's life.

    Attributes:
        requests: HTTP attempts that were sent.
        retries: Attempts that were followed by a retry after a wait (401 refreshes excluded).
        http_429: 429 answers.
        http_5xx: 5xx answers.
        token_refreshes: Tokens obtained by the token provider.
        bytes: Response body bytes received.
    """

    requests: int = 0
    retries: int = 0
    http_429: int = 0
    http_5xx: int = 0
    token_refreshes: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class _Exchange:
    """What one attempt received."""

    status: int
    headers: httpx.Headers
    raw: bytes
    size: int


@dataclass(frozen=True, slots=True)
class _Call:
    """One logical request: its target and how it is described."""

    url: httpx.URL
    resource_type: str | None
    label: str
    what: str
    breaker_key: str
    template: str
    query_keys: str
    description: str
    schedule: RetrySchedule
    method: str = "GET"
    content: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    send_token: bool = True
    answer_statuses: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One attempt of a call."""

    number: int
    request_id: str
    started_at: datetime
    started: float


class FhirHttpClient:
    """A thread-safe FHIR client for one server.

    Args:
        base_url: The FHIR base URL (``https://ehr.example/api/FHIR/R4``).
        auth: Where access tokens come from; None for an open server.
        retry: The retry policy of each call.
        bucket: Paces requests under the server's rate limit; None for no pacing.
        max_concurrency: Requests in flight at once (also the connection pool size).
        timeouts: Connect/read/write/pool timeouts.
        breaker: Stops a resource type after consecutive failures; None for no breaker.
        on_request: Called with a :class:`RequestRecord` after every attempt.
        transport: An httpx transport (tests: :class:`httpx.MockTransport`).
        sleep: Sleep function (tests).
        clock: Monotonic clock in seconds (tests).
        now: The current UTC time, for records and ``Retry-After`` dates (tests).
        rng: Random source of backoff jitter (tests).
        user_agent: The User-Agent header.
    """

    def __init__(
        self,
        base_url: str,
        auth: TokenProvider | None = None,
        *,
        retry: RetryPolicy | None = None,
        bucket: TokenBucket | None = None,
        max_concurrency: int = 4,
        timeouts: Timeouts | None = None,
        breaker: CircuitBreaker | None = None,
        on_request: Callable[[RequestRecord], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        base = httpx.URL(base_url)
        if base.scheme not in _DEFAULT_PORTS or not base.host:
            raise ConfigError("FhirHttpClient.base_url must be an absolute http(s) URL")
        if base.userinfo:
            raise ConfigError("FhirHttpClient.base_url must not carry credentials")
        if base.query or base.fragment:
            raise ConfigError("FhirHttpClient.base_url must not have a query or fragment")
        if max_concurrency < 1:
            raise ConfigError("FhirHttpClient.max_concurrency must be at least 1")
        self.base_url = str(base).rstrip("/")
        self._origin = _origin(base)
        self._auth = auth
        self._retry = retry or RetryPolicy()
        self._bucket = bucket
        self._breaker = breaker
        self._on_request = on_request
        self._sleep = sleep
        self._clock = clock
        self._now = now
        self._rng = rng or random.Random()
        self._semaphore = threading.Semaphore(max_concurrency)
        self._counter_lock = threading.Lock()
        self._counts = {"requests": 0, "retries": 0, "http_429": 0, "http_5xx": 0, "bytes": 0}
        self._http = httpx.Client(
            http1=True,
            http2=False,
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            timeout=(timeouts or Timeouts()).to_httpx(),
            transport=transport,
            headers={"User-Agent": user_agent},
            follow_redirects=False,
        )
        install_httpx_log_redaction(self.base_url)

    def __enter__(self) -> FhirHttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool, and the token provider's (if it has one)."""
        self._http.close()
        close = getattr(self._auth, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"FhirHttpClient(base_url={self.base_url!r})"

    @property
    def counters(self) -> ClientCounters:
        """A snapshot of the totals."""
        with self._counter_lock:
            counts = dict(self._counts)
        refreshes = self._auth.refreshes if self._auth is not None else 0
        return ClientCounters(token_refreshes=refreshes, **counts)

    # -- public calls ---------------------------------------------------------------------

    def get_json(
        self,
        url_or_path: str,
        params: Params | None = None,
        *,
        resource_type: str | None = None,
    ) -> FhirResponse:
        """GET a FHIR JSON object (a resource, a Bundle page, a capability statement).

        Args:
            url_or_path: A path relative to the base (``Patient``, ``Patient/123``) or an
                absolute URL on the base's scheme, host and port (a Bundle's ``next`` link),
                used as given.
            params: Query parameters, merged into the URL's own.
            resource_type: The type being extracted: names the breaker key and messages.

        Raises:
            ExtractError: A subclass per failure; see the module docstring.
        """
        call = self._start_call(url_or_path, params, resource_type)
        exchange, body, attempt = self._run(call, sink=None, accept=FHIR_JSON)
        assert body is not None
        return FhirResponse(
            body=body,
            raw=exchange.raw,
            status=exchange.status,
            headers=exchange.headers,
            request_id=attempt.request_id,
            elapsed_seconds=call.schedule.elapsed,
            attempts=attempt.number,
            server_date=parse_http_date(exchange.headers.get("Date")),
        )

    def send(
        self,
        method: str,
        url_or_path: str,
        params: Params | None = None,
        *,
        json_body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        resource_type: str | None = None,
        accept: str = FHIR_JSON,
        answer_statuses: frozenset[int] = frozenset(),
    ) -> HttpAnswer:
        """Send one request whose answer the caller interprets (Bulk Data kick-off and polls).

        Any 2xx is returned as it came (an empty 202 too; no JSON check). A status listed in
        ``answer_statuses`` is returned without a retry, so the caller applies its own rules
        (a status poll reads 429 and 5xx itself). Otherwise the rules of the module docstring
        apply: 401 refresh, 403, transient retries, ``RequestRejected`` for the rest.

        Args:
            method: ``GET``, ``POST`` or ``DELETE``.
            url_or_path: As for :meth:`get_json` (same origin as the base URL).
            params: Query parameters, merged into the URL's own.
            json_body: A JSON object to send (``Content-Type: application/fhir+json``).
            headers: Extra request headers (``Prefer: respond-async``).
            resource_type: Names the breaker key and messages.
            accept: The ``Accept`` header.
            answer_statuses: Non-2xx statuses handed back instead of handled.

        Raises:
            ExtractError: A subclass per failure; see the module docstring.
        """
        content = orjson.dumps(json_body) if json_body is not None else None
        extra = dict(headers or {})
        if content is not None:
            extra.setdefault("Content-Type", FHIR_JSON)
        call = self._start_call(
            url_or_path,
            params,
            resource_type,
            method=method.upper(),
            content=content,
            headers=tuple(extra.items()),
            answer_statuses=answer_statuses,
        )
        exchange, _, attempt = self._run(call, sink=None, accept=accept, parse_json=False)
        return HttpAnswer(
            status=exchange.status,
            headers=exchange.headers,
            raw=exchange.raw,
            request_id=attempt.request_id,
            attempts=attempt.number,
            server_date=parse_http_date(exchange.headers.get("Date")),
        )

    def stream_to(
        self,
        url_or_path: str,
        params: Params | None,
        sink: BinaryIO,
        *,
        resource_type: str | None = None,
        accept: str = FHIR_NDJSON,
    ) -> int:
        """GET a body into ``sink`` in chunks (Bulk Data output files), with the same rules.

        Each attempt rewrites ``sink`` from its start (seek 0 and truncate), so it must be
        seekable and truncatable; after a final failure it is left empty.

        Returns:
            The bytes written.
        """
        return self.download(
            url_or_path, params, sink, resource_type=resource_type, accept=accept
        ).size

    def download(
        self,
        url_or_path: str,
        params: Params | None,
        sink: BinaryIO,
        *,
        resource_type: str | None = None,
        accept: str = FHIR_NDJSON,
        allow_other_hosts: bool = False,
        send_token: bool | None = None,
    ) -> DownloadResult:
        """GET a body into ``sink`` in chunks, never holding it in memory.

        Each attempt rewrites ``sink`` from its start (seek 0 and truncate), so it must be
        seekable and truncatable; after a final failure it is left empty.

        Args:
            url_or_path: A path under the base, or an absolute URL.
            params: Query parameters, merged into the URL's own.
            sink: Where the body goes.
            resource_type: Names the breaker key and messages.
            accept: The ``Accept`` header.
            allow_other_hosts: Accept an absolute URL on another origin (Bulk Data output
                on presigned storage URLs); refused by default.
            send_token: Whether to send the access token. None (default): only to the base
                URL's origin. True sends it to another origin too (only when the server's
                manifest says ``requiresAccessToken`` and the source is configured to).

        Raises:
            ExtractError: A subclass per failure; see the module docstring.
        """
        if not (sink.seekable() and sink.writable()):
            raise ConfigError("stream_to needs a writable, seekable, truncatable sink")
        call = self._start_call(
            url_or_path,
            params,
            resource_type,
            allow_other_hosts=allow_other_hosts,
            send_token=send_token,
        )
        try:
            exchange, _, attempt = self._run(call, sink=sink, accept=accept)
        except ExtractError:
            sink.seek(0)
            sink.truncate()
            raise
        return DownloadResult(exchange.size, attempt.request_id, attempt.number, exchange.headers)

    # -- one logical request --------------------------------------------------------------

    def _start_call(
        self,
        url_or_path: str,
        params: Params | None,
        resource_type: str | None,
        *,
        method: str = "GET",
        content: bytes | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        answer_statuses: frozenset[int] = frozenset(),
        allow_other_hosts: bool = False,
        send_token: bool | None = None,
    ) -> _Call:
        label = resource_type or "FHIR request"
        url = self._target(url_or_path, label, allow_other_hosts=allow_other_hosts)
        if params:
            url = url.copy_merge_params(params)
        template = path_template(url, self.base_url)
        same_origin = _origin(url) == self._origin
        return _Call(
            url=url,
            resource_type=resource_type,
            label=label,
            what=f"{label} {_kind(template)}",
            breaker_key=resource_type or "(untyped)",
            template=template,
            query_keys=query_keys(url.params),
            description=describe_request(method, url, self.base_url),
            schedule=RetrySchedule(self._retry, label=label, clock=self._clock, rng=self._rng),
            method=method,
            content=content,
            headers=headers,
            send_token=same_origin if send_token is None else send_token,
            answer_statuses=answer_statuses,
        )

    def _target(
        self, url_or_path: str, label: str, *, allow_other_hosts: bool = False
    ) -> httpx.URL:
        candidate = httpx.URL(url_or_path)
        if not candidate.is_absolute_url:
            return httpx.URL(f"{self.base_url}/{url_or_path.lstrip('/')}")
        if candidate.scheme not in _DEFAULT_PORTS:
            raise RequestRejected(f"{label}: refusing a {candidate.scheme or 'schemeless'} link")
        if candidate.userinfo:
            raise RequestRejected(f"{label}: refusing a link that carries credentials")
        if _origin(candidate) != self._origin and not allow_other_hosts:
            raise RequestRejected(
                f"{label}: refusing to send a request and the token to host {candidate.host}; "
                f"links must stay on {self._origin[1]}"
            )
        return candidate

    def _run(
        self, call: _Call, *, sink: BinaryIO | None, accept: str, parse_json: bool = True
    ) -> tuple[_Exchange, dict[str, Any] | None, _Attempt]:
        """Attempts until success or a rule stops the call."""
        refreshed = False
        refreshes_before = 0
        malformed_once = False
        while True:
            number = call.schedule.start_attempt()
            if self._breaker is not None:
                self._breaker.check(call.breaker_key)
            attempt, token, exchange, transport_error = self._attempt(call, number, sink, accept)
            if exchange is None:
                assert transport_error is not None
                self._count(requests=1)
                self._transient(call, attempt, None, transport_error, transport_error, None, 0)
                continue

            status = exchange.status
            self._count(
                requests=1,
                bytes=exchange.size,
                http_429=int(status == 429),
                http_5xx=int(status >= 500),
            )
            if 200 <= status < 300:
                if sink is not None or not parse_json:
                    self._succeeded(call, attempt, exchange)
                    return exchange, None, attempt
                body = self._json_body(call, attempt, exchange, retry_malformed=not malformed_once)
                if body is None:
                    malformed_once = True
                    continue
                return exchange, body, attempt
            if status == 401:
                if self._auth is not None and token is not None and not refreshed:
                    refreshed = True
                    refreshes_before = self._auth.refreshes
                    self._auth.invalidate(token)
                    self._emit(call, attempt, exchange, "auth_refresh", None)
                    logger.info(
                        "%s: 401 on %s; retrying once with a new token",
                        call.label,
                        call.description,
                    )
                    continue
                self._emit(call, attempt, exchange, "failed", None)
                if self._auth is not None and not call.send_token:
                    raise AuthenticationError(
                        f"{call.label}: {call.description} answered 401 and the access token "
                        "was not sent (it goes to another host only when configured to)"
                    )
                raise AuthenticationError(self._auth_failure(call, refreshes_before))
            if status == 403:
                self._emit(call, attempt, exchange, "failed", None)
                raise AuthorizationError(self._forbidden(call))
            if status in call.answer_statuses:
                # The caller reads this answer itself (a status poll's 429 or 5xx).
                retried = "retry" if self._retry.retries_status(status) else "failed"
                retry_after = parse_retry_after(
                    exchange.headers.get("Retry-After"),
                    parse_http_date(exchange.headers.get("Date")) or self._now(),
                )
                self._emit(call, attempt, exchange, retried, None, retry_after)
                return exchange, None, attempt
            if self._retry.retries_status(status):
                retry_after = parse_retry_after(
                    exchange.headers.get("Retry-After"),
                    parse_http_date(exchange.headers.get("Date")) or self._now(),
                )
                self._transient(
                    call, attempt, exchange, _status_text(status), None, retry_after, exchange.size
                )
                continue
            self._emit(call, attempt, exchange, "failed", None)
            raise RequestRejected(self._rejected(call, exchange))

    def _attempt(
        self, call: _Call, number: int, sink: BinaryIO | None, accept: str
    ) -> tuple[_Attempt, str | None, _Exchange | None, str | None]:
        """One attempt: a concurrency slot, then a rate token, then the exchange.

        The slot is taken before the rate token so that requests queued behind slow ones
        cannot leave in a burst when those finish: the bucket paces actual sends.

        Returns:
            The attempt, the token sent, and the exchange or the transport error's class name.
        """
        with self._semaphore:
            if self._bucket is not None:
                self._bucket.acquire()
            token = self._auth.get_token() if self._auth is not None and call.send_token else None
            attempt = _Attempt(number, uuid.uuid4().hex, self._now(), self._clock())
            headers = {**dict(call.headers), "Accept": accept, "X-Request-Id": attempt.request_id}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            try:
                return attempt, token, self._exchange(call, headers, sink), None
            except (httpx.TransportError, httpx.DecodingError) as exc:
                return attempt, token, None, type(exc).__name__

    def _exchange(self, call: _Call, headers: dict[str, str], sink: BinaryIO | None) -> _Exchange:
        """Send one request and receive its body (into ``sink`` for a 2xx when streaming)."""
        with self._http.stream(
            call.method, call.url, headers=headers, content=call.content
        ) as response:
            if sink is not None and response.is_success:
                sink.seek(0)
                sink.truncate()
                written = 0
                for chunk in response.iter_bytes(_CHUNK_BYTES):
                    sink.write(chunk)
                    written += len(chunk)
                return _Exchange(response.status_code, response.headers, b"", written)
            raw = response.read()
            return _Exchange(response.status_code, response.headers, raw, len(raw))

    # -- outcomes -------------------------------------------------------------------------

    def _succeeded(self, call: _Call, attempt: _Attempt, exchange: _Exchange) -> None:
        if self._breaker is not None:
            self._breaker.record_success(call.breaker_key)
        self._emit(call, attempt, exchange, "ok", None)

    def _json_body(
        self, call: _Call, attempt: _Attempt, exchange: _Exchange, *, retry_malformed: bool
    ) -> dict[str, Any] | None:
        """The body of a 2xx as a JSON object; None after waiting to retry a malformed one.

        Raises:
            RequestRejected: The body is an OperationOutcome with an error or fatal issue.
            MalformedResponseError: Not a JSON object, and no retry is left for that.
        """
        body, problem = _json_object(exchange.raw)
        if body is None:
            self._malformed(call, attempt, exchange, problem, retry=retry_malformed)
            return None
        codes = _issue_codes(body, errors_only=True)
        if codes:
            self._emit(call, attempt, exchange, "failed", "OperationOutcome")
            raise RequestRejected(
                f"{call.what}: the server answered {exchange.status} with an OperationOutcome "
                f"error (issue codes: {', '.join(codes)}) for {call.description}"
            )
        self._succeeded(call, attempt, exchange)
        return body

    def _transient(
        self,
        call: _Call,
        attempt: _Attempt,
        exchange: _Exchange | None,
        cause: str,
        error_class: str | None,
        retry_after: float | None,
        size: int,
    ) -> None:
        """Wait before the next attempt, or raise RetriesExhausted."""
        # A 429 is the server pacing us, not failing: it does not count towards the breaker.
        if self._breaker is not None and (exchange is None or exchange.status != 429):
            self._breaker.record_failure(call.breaker_key, cause)
        try:
            delay = call.schedule.next_delay(cause, retry_after)
        except RetriesExhausted:
            self._emit(call, attempt, exchange, "failed", error_class, retry_after, size)
            logger.warning("%s: %s on %s; giving up", call.label, cause, call.description)
            raise
        self._emit(call, attempt, exchange, "retry", error_class, retry_after, size)
        logger.warning(
            "%s: %s on %s (attempt %d of %d); retrying in %.1f s",
            call.label,
            cause,
            call.description,
            attempt.number,
            self._retry.max_attempts,
            delay,
        )
        self._count(retries=1)
        self._sleep(delay)

    def _malformed(
        self, call: _Call, attempt: _Attempt, exchange: _Exchange, problem: str, *, retry: bool
    ) -> None:
        """A 2xx that is not a JSON object: wait and retry once, else raise."""
        if self._breaker is not None:
            self._breaker.record_failure(call.breaker_key, f"{exchange.status} {problem}")
        error = MalformedResponseError(
            f"{call.what}: response was not valid JSON ({exchange.size} bytes, {problem})"
        )
        if not retry:
            self._emit(call, attempt, exchange, "failed", problem)
            raise error
        try:
            delay = call.schedule.next_delay(problem)
        except RetriesExhausted:
            self._emit(call, attempt, exchange, "failed", problem)
            raise error from None
        self._emit(call, attempt, exchange, "retry", problem)
        logger.warning(
            "%s: %s response to %s was not valid JSON (%d bytes); retrying once in %.1f s",
            call.label,
            exchange.status,
            call.description,
            exchange.size,
            delay,
        )
        self._count(retries=1)
        self._sleep(delay)

    def _auth_failure(self, call: _Call, refreshes_before: int) -> str:
        if self._auth is None:
            return (
                f"{call.label}: the server requires authentication (401) and no token "
                "provider is configured"
            )
        if self._auth.refreshes > refreshes_before:
            return (
                f"{call.label}: the server refused a freshly issued token (401); check the "
                "client's registration and the token endpoint"
            )
        return (
            f"{call.label}: the server refused the access token (401) and the token provider "
            "cannot issue a new one; check the token"
        )

    def _forbidden(self, call: _Call) -> str:
        scope = self._auth.granted_scope if self._auth is not None else None
        scopes = f" ({scope[:_MAX_SCOPE_CHARS]})" if scope else ""
        if call.resource_type is None:
            return (
                f"{call.label}: access forbidden (403) for {call.description}; the token's "
                f"scopes{scopes} do not cover it"
            )
        rtype = call.resource_type
        return (
            f"{rtype}: access forbidden (403); the token's scopes{scopes} do not cover "
            f"system/{rtype}.rs or system/{rtype}.read"
        )

    def _rejected(self, call: _Call, exchange: _Exchange) -> str:
        status = exchange.status
        if 300 <= status < 400:
            return (
                f"{call.label}: unexpected redirect ({_status_text(status)}) for "
                f"{call.description}; point base_url at the final address"
            )
        body, _ = _json_object(exchange.raw)
        codes = _issue_codes(body, errors_only=False) if body is not None else None
        issues = f"; OperationOutcome issue codes: {', '.join(codes)}" if codes else ""
        rejected = f"the server rejected {call.description} ({_status_text(status)})"
        return f"{call.label}: {rejected}{issues}"

    # -- bookkeeping ----------------------------------------------------------------------

    def _emit(
        self,
        call: _Call,
        attempt: _Attempt,
        exchange: _Exchange | None,
        outcome: Outcome,
        error_class: str | None,
        retry_after: float | None = None,
        size: int | None = None,
    ) -> None:
        latency_ms = (self._clock() - attempt.started) * 1000.0
        status = exchange.status if exchange is not None else None
        record = RequestRecord(
            request_id=attempt.request_id,
            resource_type=call.resource_type,
            method=call.method,
            path_template=call.template,
            query_keys=call.query_keys,
            status=status,
            latency_ms=latency_ms,
            attempt=attempt.number,
            outcome=outcome,
            error_class=error_class,
            retry_after_seconds=retry_after,
            response_bytes=size if size is not None else (exchange.size if exchange else 0),
            started_at=attempt.started_at,
        )
        logger.debug(
            "%s: %s -> %s %s in %.0f ms (attempt %d, request %s)",
            call.label,
            call.description,
            status if status is not None else error_class,
            outcome,
            latency_ms,
            attempt.number,
            attempt.request_id,
        )
        if self._on_request is not None:
            self._on_request(record)

    def _count(self, **increments: int) -> None:
        with self._counter_lock:
            for name, value in increments.items():
                self._counts[name] += value


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 0))


def _status_text(status: int) -> str:
    reason = httpx.codes.get_reason_phrase(status)
    return f"{status} {reason}" if reason else str(status)


def _kind(template: str) -> str:
    """What a templated path asks for, in words: ``search page``, ``read``, ``operation``."""
    last = template.rsplit("/", 1)[-1]
    if last in ("{base}", "_search") or is_known_resource_type(last):
        return "search page"
    if last in ("{id}", "{vid}"):
        return "read"
    if last.startswith("$"):
        return "operation"
    return "request"


def _json_object(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """The body as a JSON object, or None and what was wrong (a class name, no content)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, type(exc).__name__
    if not isinstance(value, dict):
        return None, f"a JSON {type(value).__name__}, not an object"
    return value, ""


def _issue_codes(body: dict[str, Any], *, errors_only: bool) -> list[str]:
    """Issue codes of an OperationOutcome body (never its diagnostics or details)."""
    if body.get("resourceType") != "OperationOutcome":
        return []
    issues = body.get("issue")
    codes: list[str] = []
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict):
            continue
        if errors_only and issue.get("severity") not in ("error", "fatal"):
            continue
        code = issue.get("code")
        # Codes come from a fixed FHIR value set; anything else is shown as "unknown".
        ok = isinstance(code, str) and code.replace("-", "").isalpha() and len(code) <= 40
        text = code if ok and isinstance(code, str) else "unknown"
        if text not in codes:
            codes.append(text)
    return codes
