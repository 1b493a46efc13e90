"""Page through a FHIR search: follow ``Bundle.link[next]`` as given, keep only matches.

What real servers do and how it is taken:
- ``_count`` ignored or page sizes that change between pages: nothing depends on page size;
- the next link is an opaque URL: followed as given (same host only; the client checks);
- ``search.mode = include`` entries (referenced resources) are skipped, ``outcome`` entries
  (OperationOutcome warnings) are counted by issue code and never loaded; an entry without a
  ``search.mode`` is taken as a match, as many servers omit it;
- a next link that points back to a page already read stops the search with an error instead
  of looping for ever.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from loaders.exceptions import MalformedResponseError
from loaders.fhir.elements import unknown_elements
from loaders.resources import ParsedResource, Rejection, RejectReason, parse_resource_object

logger = logging.getLogger(__name__)

Params = Mapping[str, str | list[str]]


class JsonGetter(Protocol):
    """The part of :class:`loaders.http.FhirHttpClient` a search needs."""

    def get_json(
        self, url_or_path: str, params: Params | None = None, *, resource_type: str | None = None
    ) -> Any: ...


@dataclass(slots=True)
class SearchPage:
    """One page of a search, parsed: what to land, what to refuse, what to report.

    Attributes:
        resource_type: The searched type (``$everything`` pages hold other types too).
        number: 1 for the first page.
        request_id: The ``X-Request-Id`` of the request that returned it.
        fetched_at: The server's ``Date`` when it sent one, else the client's clock (UTC).
        accepted: Match entries that passed the resource rules.
        rejected: ``(entry index, rejection, original bytes)`` of refused match entries.
        unknown_elements: Per resource type, top-level element names R4 does not define.
        outcome_codes: Issue codes of OperationOutcome entries (``search.mode = outcome``).
        total: ``Bundle.total`` when the server sent it.
        next_url: The next page's URL, or None on the last page.
    """

    resource_type: str
    number: int
    request_id: str
    fetched_at: datetime
    accepted: list[ParsedResource] = field(default_factory=list)
    rejected: list[tuple[int, Rejection, bytes]] = field(default_factory=list)
    unknown_elements: dict[str, set[str]] = field(default_factory=dict)
    outcome_codes: list[str] = field(default_factory=list)
    total: int | None = None
    next_url: str | None = None

    @property
    def where(self) -> str:
        """Where the page came from, for quarantine rows and messages (no URL, no ids)."""
        return f"{self.resource_type} search page {self.number}"


def _bundle(body: Any, resource_type: str, number: int) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        kind = body.get("resourceType") if isinstance(body, dict) else type(body).__name__
        shown = kind if isinstance(kind, str) and kind.isalpha() else "something else"
        raise MalformedResponseError(
            f"{resource_type} search page {number}: expected a searchset Bundle, got {shown}"
        )
    entries = body.get("entry", [])
    if not isinstance(entries, list):
        raise MalformedResponseError(
            f"{resource_type} search page {number}: Bundle.entry is not an array"
        )
    return body


def _next_url(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None


def parse_page(
    body: Any, resource_type: str, number: int, request_id: str, fetched_at: datetime
) -> SearchPage:
    """Parse one searchset Bundle into a :class:`SearchPage`.

    Raises:
        MalformedResponseError: The body is not a Bundle with an entry array.
    """
    bundle = _bundle(body, resource_type, number)
    page = SearchPage(resource_type, number, request_id, fetched_at)
    total = bundle.get("total")
    page.total = total if isinstance(total, int) else None
    page.next_url = _next_url(bundle)
    for index, entry in enumerate(bundle.get("entry") or []):
        if not isinstance(entry, dict):
            page.rejected.append(
                (index, Rejection(RejectReason.NOT_AN_OBJECT, f"entry[{index}]"), b"")
            )
            continue
        search = entry.get("search")
        mode = search.get("mode", "match") if isinstance(search, dict) else "match"
        resource = entry.get("resource")
        if mode == "outcome" or (
            isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome"
        ):
            page.outcome_codes.extend(_issue_codes(resource))
            continue
        if mode != "match":
            continue
        if resource is None:
            page.rejected.append(
                (
                    index,
                    Rejection(RejectReason.BUNDLE_ENTRY_WITHOUT_RESOURCE, f"entry[{index}]"),
                    b"",
                )
            )
            continue
        result = parse_resource_object(resource)
        if isinstance(result, Rejection):
            raw = _kept_bytes(resource)
            page.rejected.append(
                (
                    index,
                    Rejection(
                        result.reason,
                        f"entry[{index}].resource.{result.json_path}",
                        result.resource_type,
                        result.resource_id,
                    ),
                    raw,
                )
            )
            continue
        unknown = unknown_elements(result.resource_type, resource.keys())
        if unknown:
            page.unknown_elements.setdefault(result.resource_type, set()).update(unknown)
        page.accepted.append(result)
    return page


def _kept_bytes(resource: Any) -> bytes:
    """A refused entry's resource as bytes for quarantine; none if it cannot be written as JSON
    (nested deeper than orjson writes: the refusal says ``too_deeply_nested``)."""
    if not isinstance(resource, dict):
        return b""
    try:
        return orjson.dumps(resource)
    except orjson.JSONEncodeError:
        return b""


def _issue_codes(outcome: Any) -> list[str]:
    if not isinstance(outcome, dict):
        return ["unknown"]
    codes = []
    for issue in outcome.get("issue") or []:
        if isinstance(issue, dict):
            code = issue.get("code")
            codes.append(code if isinstance(code, str) and code.isascii() else "unknown")
    return codes or ["unknown"]


def search_pages(
    client: JsonGetter, resource_type: str, params: Params, *, path: str | None = None
) -> Iterator[SearchPage]:
    """Yield every page of a search, following next links until there is none.

    Args:
        client: The HTTP client (auth, retries, rate limit live there).
        resource_type: The searched type (request accounting and messages).
        params: The first request's search parameters.
        path: The first request's path; ``resource_type`` when None (type-level search).

    Raises:
        MalformedResponseError: A page is not a Bundle, or a next link repeats.
        ExtractError: What the client raises (auth, rejected request, retries exhausted).
    """
    seen_links: set[str] = set()
    url: str = path or resource_type
    request_params: Params | None = params
    number = 1
    while True:
        response = client.get_json(url, request_params, resource_type=resource_type)
        fetched_at = response.server_date or datetime.now(UTC)
        page = parse_page(response.body, resource_type, number, response.request_id, fetched_at)
        if page.outcome_codes:
            logger.info(
                "%s: the server added OperationOutcome entries (codes %s)",
                page.where,
                ",".join(sorted(set(page.outcome_codes))),
            )
        yield page
        if page.next_url is None:
            return
        fingerprint = hashlib.sha256(page.next_url.encode()).hexdigest()
        if fingerprint in seen_links:
            raise MalformedResponseError(
                f"{page.where}: the next link points back to a page already read; stopping "
                "instead of looping"
            )
        seen_links.add(fingerprint)
        url, request_params, number = page.next_url, None, number + 1


def search_count(client: JsonGetter, resource_type: str, params: Params) -> int | None:
    """How many resources a search matches (``_summary=count``); None if the server won't say."""
    response = client.get_json(
        resource_type, {**params, "_summary": "count"}, resource_type=resource_type
    )
    body = response.body
    total = body.get("total") if isinstance(body, dict) else None
    return total if isinstance(total, int) and total >= 0 else None


def search_ids(client: JsonGetter, resource_type: str, params: Params) -> set[str]:
    """The ids a search matches, fetched with ``_elements=id`` (small pages of ids only)."""
    ids: set[str] = set()
    for page in search_pages(client, resource_type, {**params, "_elements": "id"}):
        ids.update(resource.id for resource in page.accepted)
    return ids
