"""A REST search page with an entry nested too deeply to write back as JSON refuses that entry
(too_deeply_nested, no bytes kept) and keeps the rest of the page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from loaders.resources import RejectReason
from loaders.rest.search import parse_page


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    top = node
    for _ in range(depth):
        child: dict[str, Any] = {}
        node["extension"] = child
        node = child
    return top


def test_an_entry_nested_past_orjsons_depth_is_refused_and_the_page_kept() -> None:
    deep = {"resourceType": "Patient", "id": "p2", "meta": {"lastUpdated": "2026-01-01T00:00:00Z"}}
    deep["contained"] = [_nested(300)]
    body = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1",
                          "meta": {"lastUpdated": "2026-01-01T00:00:00Z"}}},
            {"resource": deep},
        ],
    }  # fmt: skip

    page = parse_page(body, "Patient", 1, "req-1", datetime(2026, 1, 2, tzinfo=UTC))

    assert [r.id for r in page.accepted] == ["p1"]
    [(index, rejection, raw)] = page.rejected
    assert index == 1
    assert rejection.reason == RejectReason.TOO_DEEPLY_NESTED
    assert rejection.json_path.startswith("entry[1].resource")
    assert raw == b""
