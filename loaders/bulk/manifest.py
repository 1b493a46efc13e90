"""The complete-status manifest of a Bulk Data export, one page or several.

A manifest (IG STU2, "Response - Complete Status") lists ``output`` files (NDJSON of resources),
``deleted`` files (NDJSON of transaction Bundles whose entries ``DELETE`` a ``Type/id``) and
``error`` files (NDJSON of OperationOutcomes), each ``{"type", "url", "count"?}``, plus the
``transactionTime`` the export is consistent with and whether files need the access token.
With ``allowPartialManifests`` the server may split it into pages linked by
``link[relation=next]``: :func:`collect_manifest` follows them and unions the pages.

Parsing errors name the JSON path (``output[3].url``), never a value: URLs can carry
signatures and file names can carry identifiers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import httpx

from loaders.exceptions import MalformedResponseError
from loaders.fhir import is_known_resource_type
from loaders.resources import parse_instant

FileKind = Literal["output", "deleted", "error"]
FILE_KINDS: tuple[FileKind, ...] = ("output", "deleted", "error")
MAX_MANIFEST_PAGES = 10_000


@dataclass(frozen=True, slots=True)
class ManifestFile:
    """One file a manifest lists.

    Attributes:
        kind: ``output``, ``deleted`` or ``error``.
        resource_type: The ``type`` the manifest gives (mixed types with organizeOutputBy).
        url: Where to download it (absolute; may be on another host; may carry a signature).
        count: The lines the server says it holds, when it says.
        index: Position among the files of its kind over all manifest pages (0-based).
    """

    kind: FileKind
    resource_type: str
    url: str = field(repr=False)
    count: int | None
    index: int

    @property
    def key(self) -> str:
        """A stable id of the file within its job: a hash of its URL without the query.

        The query is left out because presigned URLs change their signature on every manifest
        fetch; the path is not shown anywhere (it can carry identifiers).
        """
        url = httpx.URL(self.url)
        stable = f"{url.scheme}://{url.host}:{url.port or ''}{url.path}"
        return hashlib.sha256(stable.encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        """A PHI-free name for messages and tables: ``output 3 (Observation)``."""
        return f"{self.kind} {self.index} ({self.resource_type})"


@dataclass(frozen=True, slots=True)
class Manifest:
    """A whole manifest (every page).

    Attributes:
        transaction_time: The instant the export is consistent with.
        transaction_time_text: It as the server wrote it: the next export's ``_since``.
        requires_access_token: Whether files need the bearer token.
        output: Resource files.
        deleted: Files of Bundles listing deleted resources.
        error: Files of OperationOutcomes.
        pages: Manifest pages read.
    """

    transaction_time: datetime
    transaction_time_text: str
    requires_access_token: bool
    output: tuple[ManifestFile, ...] = ()
    deleted: tuple[ManifestFile, ...] = ()
    error: tuple[ManifestFile, ...] = ()
    pages: int = 1

    @property
    def files(self) -> tuple[ManifestFile, ...]:
        """Every file: errors first (small, reported early), then outputs, then deletions."""
        return (*self.error, *self.output, *self.deleted)

    @property
    def declared_resources(self) -> int | None:
        """The sum of the output files' counts, when every one has a count."""
        counts = [entry.count for entry in self.output]
        return None if any(count is None for count in counts) else sum(counts)  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class ManifestPage:
    """One page of a manifest, and the link to the next page if any."""

    transaction_time: datetime
    transaction_time_text: str
    requires_access_token: bool
    files: dict[FileKind, list[tuple[str, str, int | None]]]
    next_url: str | None = field(default=None, repr=False)


def _bad(path: str, problem: str) -> MalformedResponseError:
    return MalformedResponseError(f"Bulk Data manifest: {path} {problem}")


def _files(body: dict[str, Any], kind: FileKind) -> list[tuple[str, str, int | None]]:
    raw = body.get(kind)
    if raw is None:
        if kind == "output":
            raise _bad("output", "is missing")
        return []
    if not isinstance(raw, list):
        raise _bad(kind, "is not a list")
    files = []
    for number, item in enumerate(raw):
        where = f"{kind}[{number}]"
        if not isinstance(item, dict):
            raise _bad(where, "is not an object")
        resource_type = item.get("type")
        if not isinstance(resource_type, str) or not is_known_resource_type(resource_type):
            raise _bad(f"{where}.type", "is not a FHIR R4 resource type")
        url = item.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _bad(f"{where}.url", "is not an absolute http(s) URL")
        count = item.get("count")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise _bad(f"{where}.count", "is not a whole number >= 0")
        files.append((resource_type, url, count))
    return files


def _next_link(body: dict[str, Any]) -> str | None:
    links = body.get("link")
    if links is None:
        return None
    if not isinstance(links, list):
        raise _bad("link", "is not a list")
    for number, link in enumerate(links):
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise _bad(f"link[{number}].url", "is not an absolute http(s) URL")
            return url
    return None


def parse_manifest_page(body: dict[str, Any]) -> ManifestPage:
    """Check and read one manifest page.

    Raises:
        MalformedResponseError: A required element is missing or malformed (named by path).
    """
    text = body.get("transactionTime")
    transaction_time = parse_instant(text)
    if transaction_time is None or not isinstance(text, str):
        raise _bad("transactionTime", "is missing or not a FHIR instant")
    requires = body.get("requiresAccessToken")
    if not isinstance(requires, bool):
        raise _bad("requiresAccessToken", "is missing or not a boolean")
    files = {kind: _files(body, kind) for kind in FILE_KINDS}
    return ManifestPage(transaction_time, text, requires, files, _next_link(body))


def collect_manifest(
    first: dict[str, Any], fetch_page: Callable[[str], dict[str, Any]]
) -> Manifest:
    """The whole manifest: ``first`` and every page linked from it by ``link[next]``.

    Args:
        first: The body of the complete-status answer.
        fetch_page: Returns the body of the manifest page at a URL (waiting while the server
            answers 202 for it).

    Raises:
        MalformedResponseError: A page is malformed, pages disagree on ``transactionTime``,
            or the links loop.
    """
    page = first_page = parse_manifest_page(first)
    transaction_time = page.transaction_time
    requires = page.requires_access_token
    collected: dict[FileKind, list[ManifestFile]] = {kind: [] for kind in FILE_KINDS}
    seen_links: set[str] = set()
    pages = 0
    while True:
        pages += 1
        if page.transaction_time != transaction_time:
            raise _bad(f"page {pages} transactionTime", "differs from the first page's")
        requires = requires or page.requires_access_token
        for kind in FILE_KINDS:
            for resource_type, url, count in page.files[kind]:
                index = len(collected[kind])
                collected[kind].append(ManifestFile(kind, resource_type, url, count, index))
        if page.next_url is None:
            break
        if page.next_url in seen_links or pages >= MAX_MANIFEST_PAGES:
            raise _bad(f"page {pages} link[next]", "loops back to a page already read")
        seen_links.add(page.next_url)
        page = parse_manifest_page(fetch_page(page.next_url))
    keys = [entry.key for kind in FILE_KINDS for entry in collected[kind]]
    if len(keys) != len(set(keys)):
        raise _bad("output/deleted/error", "list one file URL more than once")
    return Manifest(
        transaction_time=transaction_time,
        transaction_time_text=first_page.transaction_time_text,
        requires_access_token=requires,
        output=tuple(collected["output"]),
        deleted=tuple(collected["deleted"]),
        error=tuple(collected["error"]),
        pages=pages,
    )
