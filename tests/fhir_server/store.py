"""In-memory, thread-safe store of the current version of every resource."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tests.fhir_server.fhirtime import format_instant, parse_instant

Resource = dict[str, Any]
Key = tuple[str, str]

_MILLISECOND = timedelta(milliseconds=1)


def copy_resource(resource: Resource) -> Resource:
    """Deep copy of a JSON resource (fast: an orjson round trip)."""
    copied: Resource = orjson.loads(orjson.dumps(resource))
    return copied


@dataclass(frozen=True, slots=True)
class Entry:
    """One current resource version; never mutated once stored.

    Attributes:
        resource: The resource JSON (treat as read-only).
        last_updated: ``meta.lastUpdated`` parsed to UTC.
    """

    resource: Resource
    last_updated: datetime

    @property
    def key(self) -> Key:
        """``(resourceType, id)``."""
        return self.resource["resourceType"], self.resource["id"]

    @property
    def version_id(self) -> str:
        """``meta.versionId``."""
        return str(self.resource["meta"]["versionId"])


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A deleted resource.

    Attributes:
        entry: The last current version before the delete.
        deleted_at: Server stamp of the delete (strictly after every earlier stamp).
    """

    entry: Entry
    deleted_at: datetime

    @property
    def key(self) -> Key:
        """``(resourceType, id)``."""
        return self.entry.key


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every current entry and tombstone at one instant (see :meth:`ResourceStore.snapshot`).

    Attributes:
        at: A stamp strictly after every ``lastUpdated`` and deletion in the snapshot and
            strictly before every later one.
        entries: Current entries (immutable, so holding them freezes their content).
        tombstones: Deleted resources that have not been re-created.
    """

    at: datetime
    entries: list[Entry]
    tombstones: list[Tombstone]


class ResourceStore:
    """Latest version per ``(type, id)``, with server-stamped updates.

    Every stamp handed out by :meth:`update`/:meth:`add` is strictly greater (at millisecond
    precision) than every ``lastUpdated`` the store has ever held, whatever the clock says.
    """

    def __init__(self, resources: Iterable[Resource], clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._by_type: dict[str, dict[str, Entry]] = {}
        self._deleted: dict[Key, int] = {}
        self._tombstones: dict[Key, Tombstone] = {}
        self._max_stamp = datetime(1, 1, 1, tzinfo=UTC)
        for resource in resources:
            self._put(copy_resource(resource))

    def now(self) -> datetime:
        """The server clock as an aware UTC datetime."""
        value = self._clock()
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def _put(self, resource: Resource) -> Entry:
        meta = resource.get("meta") or {}
        if "versionId" not in meta or "lastUpdated" not in meta:
            raise ValueError(
                f"{resource.get('resourceType')}/{resource.get('id')} needs "
                "meta.versionId and meta.lastUpdated"
            )
        entry = Entry(resource, parse_instant(meta["lastUpdated"]))
        rtype, rid = entry.key
        current = self._by_type.setdefault(rtype, {}).get(rid)
        if current is None or int(entry.version_id) >= int(current.version_id):
            self._by_type[rtype][rid] = entry
        self._max_stamp = max(self._max_stamp, entry.last_updated)
        return entry

    def _next_stamp(self) -> str:
        return format_instant(self._next_instant())

    def _next_instant(self) -> datetime:
        now = self.now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        floor = self._max_stamp.replace(microsecond=self._max_stamp.microsecond // 1000 * 1000)
        stamp = max(now, floor + _MILLISECOND)
        self._max_stamp = stamp
        return stamp

    def snapshot(self) -> Snapshot:
        """Atomically take every current entry and tombstone, and a stamp that separates
        them from every later change (used as a bulk export's ``transactionTime``)."""
        with self._lock:
            at = self._next_instant()
            entries = [e for by_id in self._by_type.values() for e in by_id.values()]
            return Snapshot(at, entries, list(self._tombstones.values()))

    def entries(self, resource_type: str | None = None) -> list[Entry]:
        """Snapshot of current entries (one type, or all), unordered."""
        with self._lock:
            if resource_type is not None:
                return list(self._by_type.get(resource_type, {}).values())
            return [e for by_id in self._by_type.values() for e in by_id.values()]

    def types(self) -> set[str]:
        """Resource types that have (or had) at least one resource."""
        with self._lock:
            return set(self._by_type)

    def get(self, resource_type: str, resource_id: str) -> Entry | None:
        """The current entry, or ``None``."""
        with self._lock:
            return self._by_type.get(resource_type, {}).get(resource_id)

    def deleted_version(self, resource_type: str, resource_id: str) -> int | None:
        """The version that was deleted, or ``None`` when the resource was never deleted."""
        with self._lock:
            return self._deleted.get((resource_type, resource_id))

    def update(
        self,
        resource_type: str,
        resource_id: str,
        mutate: Callable[[Resource], None] | None = None,
    ) -> Resource:
        """Store a new version: versionId + 1, lastUpdated = next stamp; return a copy.

        Raises:
            KeyError: No current resource with that type and id.
        """
        with self._lock:
            entry = self._by_type.get(resource_type, {}).get(resource_id)
            if entry is None:
                raise KeyError(f"{resource_type}/{resource_id}")
            resource = copy_resource(entry.resource)
            if mutate is not None:
                mutate(resource)
            resource["resourceType"], resource["id"] = resource_type, resource_id
            meta = resource.setdefault("meta", {})
            meta["versionId"] = str(int(entry.version_id) + 1)
            meta["lastUpdated"] = self._next_stamp()
            self._put(resource)
            return copy_resource(resource)

    def add(self, resource: Resource) -> Resource:
        """Create a resource as the server would: versionId 1 (or after its deletion), stamped.

        Raises:
            ValueError: A current resource with the same type and id exists.
        """
        with self._lock:
            resource = copy_resource(resource)
            key = (resource["resourceType"], resource["id"])
            if self.get(*key) is not None:
                raise ValueError(f"{key[0]}/{key[1]} already exists; use update()")
            deleted = self._deleted.pop(key, None)
            self._tombstones.pop(key, None)
            meta = resource.setdefault("meta", {})
            meta["versionId"] = str(1 if deleted is None else deleted + 1)
            meta["lastUpdated"] = self._next_stamp()
            self._put(resource)
            return copy_resource(resource)

    def delete(self, resource_type: str, resource_id: str) -> None:
        """Remove the current version; reads then answer 410 Gone. The delete is stamped
        like an update, so a bulk export with ``_since`` before it reports it.

        Raises:
            KeyError: No current resource with that type and id.
        """
        with self._lock:
            entry = self._by_type.get(resource_type, {}).pop(resource_id)
            key = (resource_type, resource_id)
            self._deleted[key] = int(entry.version_id) + 1
            self._tombstones[key] = Tombstone(entry, self._next_instant())
