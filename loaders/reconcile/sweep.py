"""Compare a window's ids on both sides: what the source has that the warehouse lacks, and back.

The source's ids come from the window's search with ``_elements=id`` (large pages of ids only,
followed by ``link[next]``); the warehouse's are its current, non-deleted rows in the window.

- ``missing`` (source only): holes; fetched by ``_id`` and merged.
- ``extra`` (warehouse only): either deleted on the source, or updated since the last sync so
  that its new ``lastUpdated`` lies after the window. A search by ``_id`` tells them apart:
  what it returns is merged as the newer version it is; what it does not return is gone from
  the source and is marked deleted (:mod:`loaders.reconcile.deletes`).

A window's counts can agree while its ids do not (a hole and a deletion cancel out); the full
sweep (``--sweep-deletes``) compares ids in every window for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loaders.reconcile.compare import WindowCheck
from loaders.rest.config import Strategy
from loaders.rest.search import JsonGetter, SearchPage, search_ids
from loaders.rest.tasks import PullTask

# Ids listed per page, and asked for per ``_id`` search (kept well under URL length limits).
ID_PAGE_SIZE = 1000
ID_BATCH = 50


@dataclass(slots=True)
class IdDifference:
    """The ids of one window that the two sides disagree on."""

    check: WindowCheck
    missing: set[str] = field(default_factory=set)
    extra: set[str] = field(default_factory=set)

    @property
    def to_fetch(self) -> set[str]:
        """Every id to ask the source for by ``_id``."""
        return self.missing | self.extra


def source_ids(client: JsonGetter, check: WindowCheck) -> set[str]:
    """The ids the source lists in the check's window (ids only, every page)."""
    params = {**check.window.params("_lastUpdated"), "_count": str(ID_PAGE_SIZE)}
    return search_ids(client, check.resource_type, params)


def compare_ids(check: WindowCheck, on_source: set[str], in_warehouse: set[str]) -> IdDifference:
    """The ids only one side has."""
    return IdDifference(check, on_source - in_warehouse, in_warehouse - on_source)


def fetch_tasks(resource_type: str, ids: set[str], label: str) -> list[PullTask]:
    """Searches by ``_id`` for ``ids``, in batches (the REST task code lands what they return)."""
    ordered = sorted(ids)
    batches = [ordered[start : start + ID_BATCH] for start in range(0, len(ordered), ID_BATCH)]
    return [
        PullTask(
            resource_type,
            Strategy.LAST_UPDATED,
            {"_id": ",".join(batch), "_count": str(len(batch))},
            None,
            f"{label} by id {number}/{len(batches)}",
        )
        for number, batch in enumerate(batches, start=1)
    ]


@dataclass(slots=True)
class Presence:
    """Which ids the ``_id`` searches showed to exist, per type (accepted or refused entries).

    ``uncertain`` holds types for which a refused entry carried no readable id: absence cannot
    be proven for that type, so none of its resources is marked deleted.
    """

    seen: dict[str, set[str]] = field(default_factory=dict)
    uncertain: set[str] = field(default_factory=set)

    def note(self, page: SearchPage) -> None:
        """Record the ids a page of an ``_id`` search returned."""
        seen = self.seen.setdefault(page.resource_type, set())
        seen.update(r.id for r in page.accepted if r.resource_type == page.resource_type)
        for _index, rejection, _raw in page.rejected:
            if rejection.resource_id is None:
                self.uncertain.add(page.resource_type)
            else:
                seen.add(rejection.resource_id)
