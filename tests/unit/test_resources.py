"""Accepting and refusing single resources, and the order in which versions supersede."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson
import pytest

from loaders.resources import (
    ParsedResource,
    Rejection,
    RejectReason,
    parse_instant,
    parse_resource_bytes,
    parse_resource_object,
)

FETCHED = datetime(2026, 11, 22, tzinfo=UTC)


def test_accepts_a_resource_and_keeps_its_bytes_unchanged() -> None:
    raw = (
        b'{"resourceType":"Patient", "id":"p1",'
        b'"meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05.123+02:00"}}'
    )
    parsed = parse_resource_bytes(raw)
    assert isinstance(parsed, ParsedResource)
    assert (parsed.resource_type, parsed.id, parsed.version_id) == ("Patient", "p1", "3")
    assert parsed.last_updated == datetime(2026, 1, 2, 1, 4, 5, 123000, tzinfo=UTC)
    assert parsed.text == raw


def test_content_hash_is_of_canonical_json_so_key_order_and_spacing_do_not_matter() -> None:
    first = parse_resource_bytes(b'{"resourceType":"Patient","id":"p1","gender":"male"}')
    second = parse_resource_bytes(b'{ "gender": "male", "id": "p1", "resourceType": "Patient" }')
    assert isinstance(first, ParsedResource) and isinstance(second, ParsedResource)
    assert first.content_hash == second.content_hash
    canonical = orjson.dumps({"gender": "male", "id": "p1", "resourceType": "Patient"})
    assert first.content_hash == hashlib.sha256(canonical).hexdigest()


@pytest.mark.parametrize(
    ("raw", "reason", "path"),
    [
        (b'{"resourceType":"Patient"', RejectReason.INVALID_JSON, "$"),
        (b'{"resourceType":"Patient","id":"\xff"}', RejectReason.INVALID_UTF8, "$"),
        (b'["Patient"]', RejectReason.NOT_AN_OBJECT, "$"),
        (b'{"id":"p1"}', RejectReason.MISSING_RESOURCE_TYPE, "resourceType"),
        (
            b'{"resourceType":"Patientt","id":"p1"}',
            RejectReason.UNKNOWN_RESOURCE_TYPE,
            "resourceType",
        ),
        (
            b'{"resourceType":"patient","id":"p1"}',
            RejectReason.UNKNOWN_RESOURCE_TYPE,
            "resourceType",
        ),
        (
            b'{"resourceType":"HumanName","id":"p1"}',
            RejectReason.UNKNOWN_RESOURCE_TYPE,
            "resourceType",
        ),
        (b'{"resourceType":"Patient"}', RejectReason.MISSING_ID, "id"),
        (b'{"resourceType":"Patient","id":""}', RejectReason.MISSING_ID, "id"),
        (b'{"resourceType":"Patient","id":"has space"}', RejectReason.INVALID_ID, "id"),
        (b'{"resourceType":"Patient","id":7}', RejectReason.INVALID_ID, "id"),
        (
            b'{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2026-01-02"}}',
            RejectReason.INVALID_LAST_UPDATED,
            "meta.lastUpdated",
        ),
        (
            b'{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2026-01-02T03:04:05"}}',
            RejectReason.INVALID_LAST_UPDATED,
            "meta.lastUpdated",
        ),
    ],
)
def test_refuses_with_a_reason_and_a_path(raw: bytes, reason: RejectReason, path: str) -> None:
    result = parse_resource_bytes(raw)
    assert isinstance(result, Rejection)
    assert (result.reason, result.json_path) == (reason, path)


def test_rejection_carries_type_and_id_when_known_but_never_the_payload() -> None:
    result = parse_resource_bytes(
        b'{"resourceType":"Patient","id":"p9","name":[{"family":"Secret"}],'
        b'"meta":{"lastUpdated":"yesterday"}}'
    )
    assert isinstance(result, Rejection)
    assert (result.resource_type, result.resource_id) == ("Patient", "p9")
    assert "Secret" not in repr(result)


def test_parse_object_serialises_the_resource() -> None:
    parsed = parse_resource_object({"resourceType": "Encounter", "id": "e1"})
    assert isinstance(parsed, ParsedResource)
    assert orjson.loads(parsed.text) == {"resourceType": "Encounter", "id": "e1"}
    assert isinstance(parse_resource_object(["not", "a", "resource"]), Rejection)


def _version(updated: str | None, version: str | None, body: str = "") -> ParsedResource:
    meta: dict[str, str] = {}
    if updated:
        meta["lastUpdated"] = updated
    if version:
        meta["versionId"] = version
    parsed = parse_resource_object({"resourceType": "Patient", "id": "p1", "meta": meta, "x": body})
    assert isinstance(parsed, ParsedResource)
    return parsed


def test_later_last_updated_sorts_after_earlier_whatever_the_version() -> None:
    older = _version("2026-01-01T00:00:00Z", "9")
    newer = _version("2026-01-02T00:00:00+05:00", "1")
    assert older.version_sort_key(FETCHED) < newer.version_sort_key(FETCHED)


def test_same_timestamp_orders_by_numeric_version_then_by_hash() -> None:
    v2 = _version("2026-01-01T00:00:00Z", "2")
    v10 = _version("2026-01-01T00:00:00Z", "10")
    assert v2.version_sort_key(FETCHED) < v10.version_sort_key(FETCHED)
    a, b = _version("2026-01-01T00:00:00Z", "1", "a"), _version("2026-01-01T00:00:00Z", "1", "b")
    assert a.version_sort_key(FETCHED) != b.version_sort_key(FETCHED)


def test_without_last_updated_the_fetch_time_orders_versions() -> None:
    undated = _version(None, None)
    assert undated.version_sort_key(FETCHED) < undated.version_sort_key(FETCHED.replace(day=23))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:00-05:00", datetime(2026, 11, 20, 15, tzinfo=UTC)),
        ("2026-11-20", None),
        ("2026-11-20T10:00:00", None),
        ("not a date", None),
        (20261120, None),
    ],
)
def test_parse_instant(value: object, expected: datetime | None) -> None:
    assert parse_instant(value) == expected
