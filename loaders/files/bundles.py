"""Split a FHIR Bundle into its resources, with references resolved.

Accepted Bundle types are the ones that carry resources to load: transaction, batch,
collection, searchset (only ``search.mode = match`` entries; ``include`` and ``outcome``
entries are someone else's resources or server messages) and history. A Bundle whose type is
anything else (``document``, ``message``, a misspelling, not a string) is refused whole; a
searchset entry whose ``search`` is not an object with one of the three FHIR modes is refused
on its own (``invalid_bundle`` at ``Bundle.entry[i].search``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loaders.files.references import rewrite_references
from loaders.resources import Rejection, RejectReason

LOADABLE_BUNDLE_TYPES = frozenset({"transaction", "batch", "collection", "searchset", "history"})
SEARCH_MODES = frozenset({"match", "include", "outcome"})


@dataclass(frozen=True, slots=True)
class BundleEntry:
    """One resource taken out of a Bundle, references already rewritten."""

    index: int
    resource: dict[str, Any]


def _reference_targets(entries: list[Any]) -> dict[str, str]:
    targets: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        full_url = entry.get("fullUrl")
        resource = entry.get("resource")
        if not isinstance(full_url, str) or not isinstance(resource, dict):
            continue
        resource_type = resource.get("resourceType")
        resource_id = resource.get("id")
        if isinstance(resource_type, str) and isinstance(resource_id, str) and resource_id:
            targets[full_url] = f"{resource_type}/{resource_id}"
    return targets


def _assign_missing_ids(entries: list[Any]) -> None:
    """Give an entry whose resource has no id the UUID of its ``urn:uuid:`` fullUrl.

    Transaction Bundles may omit ids and let the server assign them; the URN is the stable
    identity the Bundle itself uses, so it becomes the id (FHIR ids allow a UUID).
    """
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        full_url = entry.get("fullUrl")
        resource = entry.get("resource")
        if (
            isinstance(resource, dict)
            # Only a missing or empty id: an id of another JSON type (0, false, []) is refused
            # as invalid_id, not silently replaced.
            and resource.get("id") in (None, "")
            and isinstance(full_url, str)
            and full_url.startswith("urn:uuid:")
        ):
            resource["id"] = full_url.removeprefix("urn:uuid:")


def _search_mode(entry: dict[str, Any]) -> str | None:
    """A searchset entry's ``search.mode`` (``match`` when absent); None when malformed."""
    search = entry.get("search")
    if search is None:
        return "match"
    if not isinstance(search, dict):
        return None
    mode = search.get("mode", "match")
    return mode if isinstance(mode, str) and mode in SEARCH_MODES else None


def iter_bundle(bundle: dict[str, Any]) -> Iterator[BundleEntry | tuple[int, Rejection]]:
    """The resources of a Bundle, or a rejection for each entry (or the Bundle) that has none.

    Args:
        bundle: A decoded JSON object whose ``resourceType`` is ``Bundle``.

    Yields:
        A BundleEntry per loadable resource, or ``(entry_index, Rejection)``; an index of -1
        means the Bundle as a whole was refused.
    """
    bundle_type = bundle.get("type")
    if not isinstance(bundle_type, str) or bundle_type not in LOADABLE_BUNDLE_TYPES:
        yield -1, Rejection(RejectReason.UNSUPPORTED_BUNDLE_TYPE, "Bundle.type", "Bundle")
        return
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        yield -1, Rejection(RejectReason.INVALID_BUNDLE, "Bundle.entry", "Bundle")
        return
    _assign_missing_ids(entries)
    targets = _reference_targets(entries)
    for index, entry in enumerate(entries):
        path = f"Bundle.entry[{index}]"
        if not isinstance(entry, dict):
            yield index, Rejection(RejectReason.INVALID_BUNDLE, path, "Bundle")
            continue
        if bundle_type == "searchset":
            mode = _search_mode(entry)
            if mode is None:
                yield index, Rejection(RejectReason.INVALID_BUNDLE, f"{path}.search", "Bundle")
                continue
            if mode != "match":
                continue
        resource = entry.get("resource")
        if resource is None:
            yield (
                index,
                Rejection(RejectReason.BUNDLE_ENTRY_WITHOUT_RESOURCE, f"{path}.resource", "Bundle"),
            )
            continue
        if not isinstance(resource, dict):
            yield index, Rejection(RejectReason.NOT_AN_OBJECT, f"{path}.resource", "Bundle")
            continue
        rewrite_references(resource, targets)
        yield BundleEntry(index=index, resource=resource)
