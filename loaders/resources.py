"""Turn one raw FHIR resource (bytes or a parsed dict) into what a raw table row needs.

Every loader (files today; REST and Bulk later) hands resources here, so the rules for what is
accepted, and the reason given when something is not, live in one place. A rejection names a
reason and a JSON path, never the payload or the resource's identifiers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from loaders.fhir import is_known_resource_type

# FHIR R4 id datatype: https://hl7.org/fhir/R4/datatypes.html#id
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_NUMERIC_VERSION = re.compile(r"\d{1,12}")
# orjson refuses to write JSON nested deeper than this (it reads up to 1024 levels).
MAX_JSON_DEPTH = 254


class RejectReason(StrEnum):
    """Why a resource went to quarantine instead of a raw table."""

    UNREADABLE_FILE = "unreadable_file"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_RESOURCE_TYPE = "missing_resource_type"
    UNKNOWN_RESOURCE_TYPE = "unknown_resource_type"
    MISSING_ID = "missing_id"
    INVALID_ID = "invalid_id"
    INVALID_LAST_UPDATED = "invalid_last_updated"
    INVALID_BUNDLE = "invalid_bundle"
    UNSUPPORTED_BUNDLE_TYPE = "unsupported_bundle_type"
    BUNDLE_ENTRY_WITHOUT_RESOURCE = "bundle_entry_without_resource"
    # Not valid against its fhir.resources.R4B model (validation mode sample or full).
    INVALID_FHIR_RESOURCE = "invalid_fhir_resource"
    # Nested deeper than orjson writes JSON (MAX_JSON_DEPTH): it cannot be hashed or landed.
    TOO_DEEPLY_NESTED = "too_deeply_nested"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A resource that cannot be loaded, and where it went wrong.

    Attributes:
        reason: The rule it broke.
        json_path: Where in the resource (or Bundle) the problem is, e.g. ``meta.lastUpdated``.
        resource_type: The resource type when it could be read, else None.
        resource_id: The id when it could be read; stored in the warehouse quarantine table
            only, never put in a message.
    """

    reason: RejectReason
    json_path: str
    resource_type: str | None = None
    resource_id: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedResource:
    """A resource accepted for loading, with the columns the raw tables need.

    Attributes:
        resource_type: ``resourceType``.
        id: The logical id.
        version_id: ``meta.versionId`` or None.
        last_updated: ``meta.lastUpdated`` in UTC, or None when the source sent none.
        content_hash: sha256 of the canonical JSON (keys sorted, no whitespace).
        text: The resource as JSON text, exactly as landed.
    """

    resource_type: str
    id: str
    version_id: str | None
    last_updated: datetime | None
    content_hash: str
    text: bytes

    def version_sort_key(self, fetched_at: datetime) -> str:
        """A string whose order is the order in which versions of one resource supersede.

        Later ``meta.lastUpdated`` wins (the fetch time stands in when the source sends none);
        then the higher ``meta.versionId``; then the content hash, so that two different
        payloads with the same timestamp and version resolve the same way whatever order they
        arrive in.
        """
        when = self.last_updated or fetched_at
        version = self.version_id or ""
        if _NUMERIC_VERSION.fullmatch(version):
            version = version.zfill(12)
        # The year is padded by hand: strftime writes year 999 as ``999``, which would sort
        # after ``2026`` and let an older version replace a newer one.
        stamp = f"{when.year:04d}{when.strftime('-%m-%dT%H:%M:%S.%fZ')}"
        return f"{stamp}|{version}|{self.content_hash}"


def parse_instant(value: Any) -> datetime | None:
    """Parse a FHIR ``instant`` into an aware UTC datetime; None if it is not a valid instant."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        return None


def parse_resource_bytes(raw: bytes) -> ParsedResource | Rejection:
    """Parse one resource given as JSON bytes (an NDJSON line or a downloaded page entry).

    The bytes are kept unchanged as the landed text when the resource is accepted.
    """
    return decode_resource_bytes(raw)[0]


def decode_resource_bytes(raw: bytes) -> tuple[ParsedResource | Rejection, Any]:
    """:func:`parse_resource_bytes`, and the decoded document (None when ``raw`` is not JSON).

    For callers that inspect the document further (the schema drift walk, a Bundle's entries)
    without decoding the text a second time.
    """
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return Rejection(RejectReason.INVALID_UTF8, "$"), None
        return Rejection(RejectReason.INVALID_JSON, "$"), None
    return _accept(document, raw), document


def parse_resource_object(document: Any) -> ParsedResource | Rejection:
    """Parse one resource given as an already decoded object (a Bundle entry's resource)."""
    if not isinstance(document, dict):
        return Rejection(RejectReason.NOT_AN_OBJECT, "$")
    try:
        text = orjson.dumps(document)
    except orjson.JSONEncodeError:  # nested deeper than MAX_JSON_DEPTH
        return _too_deep(document)
    return _accept(document, text)


def _too_deep(document: dict[str, Any]) -> Rejection:
    resource_type = document.get("resourceType")
    return Rejection(
        RejectReason.TOO_DEEPLY_NESTED,
        "$",
        resource_type
        if isinstance(resource_type, str) and is_known_resource_type(resource_type)
        else None,
    )


def _accept(document: Any, text: bytes) -> ParsedResource | Rejection:
    if not isinstance(document, dict):
        return Rejection(RejectReason.NOT_AN_OBJECT, "$")
    resource_type = document.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        return Rejection(RejectReason.MISSING_RESOURCE_TYPE, "resourceType")
    if not is_known_resource_type(resource_type):
        return Rejection(RejectReason.UNKNOWN_RESOURCE_TYPE, "resourceType")
    resource_id = document.get("id")
    if resource_id is None or resource_id == "":
        return Rejection(RejectReason.MISSING_ID, "id", resource_type)
    if not isinstance(resource_id, str) or not _FHIR_ID.fullmatch(resource_id):
        return Rejection(RejectReason.INVALID_ID, "id", resource_type)
    version_id: str | None = None
    last_updated: datetime | None = None
    meta = document.get("meta")
    if isinstance(meta, dict):
        raw_version = meta.get("versionId")
        version_id = None if raw_version is None else str(raw_version)
        if "lastUpdated" in meta:
            last_updated = parse_instant(meta["lastUpdated"])
            if last_updated is None:
                return Rejection(
                    RejectReason.INVALID_LAST_UPDATED,
                    "meta.lastUpdated",
                    resource_type,
                    resource_id,
                )
    try:
        canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # nested deeper than MAX_JSON_DEPTH
        return _too_deep(document)
    return ParsedResource(
        resource_type=resource_type,
        id=resource_id,
        version_id=version_id,
        last_updated=last_updated,
        content_hash=hashlib.sha256(canonical).hexdigest(),
        text=text,
    )
