"""What may be recorded about a FHIR request: PHI-free descriptions of URLs and attempts.

A FHIR URL carries PHI in two places: path segments that are ids (``Patient/123``) and query
values (``?name=Smith``, ``?patient=Patient/123``). Everything here keeps the *shape* of a
request and drops those:

* :func:`path_template` keeps resource types, operations (``$everything``), keywords
  (``_history``, ``_search``) and ``metadata``; every other segment becomes ``{id}`` (``{vid}``
  after ``_history``). The base URL's own path becomes ``{base}``; host and credentials never
  appear.
* :func:`query_keys` keeps parameter names only; :func:`safe_query_description` keeps values
  only for an allow-list of paging/formatting parameters that cannot identify anyone.
* :class:`HttpxUrlRedactor` rewrites the URL in httpx's own ``HTTP Request: GET <url>`` log line.

Each attempt the client makes becomes a :class:`RequestRecord` for metrics and run logs.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import httpx

from loaders.fhir.resource_types import is_known_resource_type

Outcome = Literal["ok", "retry", "failed", "auth_refresh"]

# Parameters whose values describe paging or formatting, never a person.
SAFE_VALUE_PARAMS: frozenset[str] = frozenset(
    {
        "_count",
        "_sort",
        "_summary",
        "_elements",
        "_type",
        "_lastUpdated",
        "_since",
        "_outputFormat",
    }
)

_OPERATION = re.compile(r"\$[A-Za-z][A-Za-z0-9-]{0,63}")
_KEYWORD = re.compile(r"_[a-z]{1,32}")
_FIXED_SEGMENTS = frozenset({"metadata", ".well-known", "smart-configuration"})
_PARAM_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

QueryParamsLike = (
    httpx.QueryParams | Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]] | None
)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One HTTP attempt, described without PHI.

    Attributes:
        request_id: The ``X-Request-Id`` sent (a uuid4), to match the server's logs.
        resource_type: The resource type being extracted, if the caller named one.
        method: HTTP method.
        path_template: See :func:`path_template`.
        query_keys: Sorted query parameter names, comma-joined (no values).
        status: HTTP status, or None when no response arrived.
        latency_ms: Time from sending to the end of the body (or the error).
        attempt: Attempt number within its logical request (1-based).
        outcome: ``ok``, ``retry`` (another attempt follows), ``failed`` (the request ends with
            an error) or ``auth_refresh`` (a 401 answered by fetching a new token).
        error_class: The exception class or failure kind, if any.
        retry_after_seconds: The server's ``Retry-After``, if it sent one.
        response_bytes: Body bytes received.
        started_at: When the attempt was sent (UTC).
    """

    request_id: str
    resource_type: str | None
    method: str
    path_template: str
    query_keys: str
    status: int | None
    latency_ms: float
    attempt: int
    outcome: Outcome
    error_class: str | None
    retry_after_seconds: float | None
    response_bytes: int
    started_at: datetime


def _template_segments(segments: Iterable[str]) -> list[str]:
    """Each path segment kept if it is structural, else replaced with a placeholder."""
    out: list[str] = []
    previous = ""
    for segment in segments:
        if not segment:
            continue
        if (
            _OPERATION.fullmatch(segment)
            or _KEYWORD.fullmatch(segment)
            or segment in _FIXED_SEGMENTS
            # Gated so that ids never reach the (cached) type lookup unless they look like one.
            or (segment.isalpha() and segment[0].isupper() and is_known_resource_type(segment))
        ):
            out.append(segment)
        elif previous == "_history":
            out.append("{vid}")
        else:
            out.append("{id}")
        previous = segment
    return out


def path_template(url: str | httpx.URL, base_url: str | httpx.URL) -> str:
    """The path of ``url`` relative to ``base_url``, with ids replaced by placeholders.

    Examples (base ``https://ehr.example/fhir/r4``)::

        .../fhir/r4/Patient?name=x              -> Patient
        .../fhir/r4/Patient/123/$everything     -> Patient/{id}/$everything
        .../fhir/r4/Patient/123/_history/4      -> Patient/{id}/_history/{vid}
        .../fhir/r4?_getpages=abc&_count=50     -> {base}
        https://other.example/files/x.ndjson     -> /{id}/{id}

    A relative ``url`` (``Patient/123``) is read as relative to the base. A path outside the
    base path keeps a leading ``/`` and has every segment templated. Query strings, hosts and
    credentials never appear.
    """
    target = httpx.URL(url) if isinstance(url, str) else url
    base_path = httpx.URL(base_url).path.rstrip("/") if base_url else ""
    path = target.path
    if not target.is_absolute_url and not path.startswith("/"):
        relative = path
    elif path.rstrip("/") == base_path:
        relative = ""
    elif base_path == "" or path.startswith(base_path + "/"):
        relative = path[len(base_path) :]
    else:
        return "/" + "/".join(_template_segments(path.split("/")))
    segments = _template_segments(relative.split("/"))
    return "/".join(segments) if segments else "{base}"


def _param_name(name: str) -> str:
    return name if _PARAM_NAME.fullmatch(name) else "{param}"


def _pairs(params: QueryParamsLike) -> list[tuple[str, str]]:
    if params is None:
        return []
    if not isinstance(params, httpx.QueryParams):
        params = httpx.QueryParams(params)  # type: ignore[arg-type]
    return params.multi_items()


def query_keys(params: QueryParamsLike) -> str:
    """Sorted, de-duplicated parameter names, comma-joined; never a value."""
    return ",".join(sorted({_param_name(name) for name, _ in _pairs(params)}))


def safe_query_description(params: QueryParamsLike) -> str:
    """A query string with values kept only for :data:`SAFE_VALUE_PARAMS`.

    ``{"_count": "50", "name": "Smith", "patient": "Patient/1"}`` ->
    ``_count=50&name&patient``. Names are sorted; a name without a safe value appears once.
    """
    kept: list[str] = []
    seen_names: set[str] = set()
    for name, value in sorted(_pairs(params), key=lambda pair: pair[0]):
        if name in SAFE_VALUE_PARAMS:
            kept.append(f"{name}={value}")
            continue
        shown = _param_name(name)
        if shown not in seen_names:
            seen_names.add(shown)
            kept.append(shown)
    return "&".join(kept)


def describe_request(method: str, url: httpx.URL, base_url: str | httpx.URL) -> str:
    """``GET Patient/{id}/$everything?_count=50&start`` -- safe for logs and messages."""
    query = safe_query_description(url.params) if url.query else ""
    return f"{method} {path_template(url, base_url)}" + (f"?{query}" if query else "")


def _origin(url: httpx.URL) -> str:
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}"


def redact_url(url: httpx.URL, base_urls: Iterable[str] = ()) -> str:
    """``url`` as origin + templated path + safe query, for third-party log lines.

    Under one of ``base_urls`` the base's path is kept as is (it is configuration, not PHI);
    elsewhere every path segment is templated. User info (credentials) never appears.
    """
    origin = _origin(url)
    base_path = ""
    for base in base_urls:
        parsed = httpx.URL(base)
        candidate = parsed.path.rstrip("/")
        same_origin = _origin(parsed) == origin
        if same_origin and (url.path == candidate or url.path.startswith(candidate + "/")):
            base_path = max(base_path, candidate, key=len)
    relative = url.path[len(base_path) :]
    path = "/".join([base_path, *_template_segments(relative.split("/"))])
    query = safe_query_description(url.params) if url.query else ""
    return f"{origin}{path or '/'}" + (f"?{query}" if query else "")


class HttpxUrlRedactor(logging.Filter):
    """Rewrites URL arguments of httpx's log records (``HTTP Request: GET <url> ...``)."""

    def __init__(self) -> None:
        super().__init__()
        self.base_urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace every :class:`httpx.URL` argument by :func:`redact_url` of it."""
        args = record.args
        if isinstance(args, tuple) and any(isinstance(arg, httpx.URL) for arg in args):
            bases = tuple(self.base_urls)
            record.args = tuple(
                redact_url(arg, bases) if isinstance(arg, httpx.URL) else arg for arg in args
            )
        return True


_install_lock = threading.Lock()


def install_httpx_log_redaction(base_url: str | httpx.URL | None = None) -> None:
    """Attach :class:`HttpxUrlRedactor` to the ``httpx`` logger (once per process).

    httpx logs every request's full URL at INFO; with query values and ids in it that is PHI.

    Args:
        base_url: A FHIR base URL whose path may be shown verbatim in those lines.
    """
    httpx_logger = logging.getLogger("httpx")
    with _install_lock:
        redactor = next((f for f in httpx_logger.filters if isinstance(f, HttpxUrlRedactor)), None)
        if redactor is None:
            redactor = HttpxUrlRedactor()
            httpx_logger.addFilter(redactor)
        if base_url is not None:
            parsed = httpx.URL(base_url)
            redactor.base_urls.add(_origin(parsed) + parsed.path.rstrip("/"))
