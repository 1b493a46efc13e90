"""Pull one task (a window of one resource type) page by page, and prove the window complete.

Paging by offset over live data skips a resource whenever an earlier one is updated while the
client pages: the update moves it out of the window and everything after it shifts one place
left, over the page boundary. Nothing in the pages shows it. So after paging a ``_lastUpdated``
window ``(start, end]`` the task asks the server two cheap questions:

- how many resources the window holds now (``_summary=count``): ``N``;
- which ids were updated since paging began (``_lastUpdated=gt{paging start}``, ids only): ``U``
  (those left the window; their new versions belong to the next window or run).

Every resource still in the window was either received or missed, so
``missed = N - |received in window, not in U|``. If ``missed > 0`` the task lists the window's
ids (``_elements=id``, one large page), fetches the ones it has not received by ``_id`` (the
merge makes any repeat cost nothing) and checks again, up to ``max_repages`` times; then it
fails with :class:`IncompleteWindowError` and its cursor does not move. A deletion during
paging can hide a miss (``N`` shrinks); finding deletions is the reconciliation sweep's job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from loaders.drift import DriftAction, DriftObservation, DriftPolicy
from loaders.exceptions import IncompleteWindowError, RequestRejected, SchemaDriftError
from loaders.rest.config import Strategy
from loaders.rest.search import (
    JsonGetter,
    Params,
    SearchPage,
    search_count,
    search_ids,
    search_pages,
)
from loaders.rest.windows import Window, fhir_instant

logger = logging.getLogger(__name__)

# The Date header has one-second resolution; updates in the second before it count as "during".
_CLOCK_MARGIN = timedelta(seconds=2)
# Ids listed per request when checking a window, and fetched per request when repairing one.
_ID_PAGE_SIZE = 1000
_ID_BATCH = 50


@dataclass(frozen=True, slots=True)
class PullTask:
    """One search to run to the end: a type, its parameters, and the window they select.

    Attributes:
        resource_type: The searched type.
        strategy: How the type is extracted (decides whether the window can be verified).
        params: First-page search parameters (window, ``_count``, ``_sort``, ``patient``...).
        window: The ``_lastUpdated`` or clinical-date window, when there is one.
        label: A description for progress and messages (no identifiers).
        path: The first request's path when it is not the type (``Patient/{id}/$everything``).
    """

    resource_type: str
    strategy: Strategy
    params: Params
    window: Window | None = None
    label: str = ""
    path: str | None = None

    @property
    def verifiable(self) -> bool:
        """Windows on ``_lastUpdated`` can be proven complete by count."""
        return self.strategy is Strategy.LAST_UPDATED and self.window is not None


@dataclass(slots=True)
class PullStats:
    """What a task cost."""

    pages: int = 0
    resources: int = 0
    repages: int = 0
    verified: bool = False
    received_in_window: set[str] = field(default_factory=set)


def _failing_elements(page: SearchPage, policy: DriftPolicy | None) -> dict[str, set[str]]:
    """The page's unknown top-level elements whose drift policy is ``fail`` (all without one).

    Elements under ``warn`` or ``accept`` go on to the landing, where the run's drift ledger
    records them (:mod:`loaders.drift`).
    """
    if policy is None:
        return page.unknown_elements
    failing: dict[str, set[str]] = {}
    for resource_type, names in page.unknown_elements.items():
        for name in names:
            finding = DriftObservation(resource_type, f"{resource_type}.{name}", "", "unknown", 1)
            if policy.action_for(finding) is DriftAction.FAIL:
                failing.setdefault(resource_type, set()).add(name)
    return failing


def _drift_error(page: SearchPage, failing: dict[str, set[str]]) -> SchemaDriftError:
    found = "; ".join(
        f"{resource_type}: {', '.join(sorted(names))}"
        for resource_type, names in sorted(failing.items())
    )
    return SchemaDriftError(
        f"{page.where}: elements not in the FHIR R4 definition ({found}) - a renamed or "
        "vendor field? Nothing of this page was merged and the cursor did not move; fix the "
        "mapping or the source, then run again"
    )


def pull(
    client: JsonGetter,
    task: PullTask,
    stats: PullStats,
    *,
    verify: bool,
    max_repages: int,
    drift_policy: DriftPolicy | None = None,
) -> Iterator[SearchPage]:
    """Yield the task's pages; when asked, verify the window and fetch what paging missed.

    Args:
        drift_policy: The source's drift policy: unknown top-level elements it does not mark
            ``fail`` pass on (to be recorded when landed); None stops on every one.

    Raises:
        SchemaDriftError: A page carries top-level elements R4 does not define (under a
            ``fail`` policy); the page is not yielded.
        IncompleteWindowError: The window still misses resources after ``max_repages``.
        ExtractError: What the HTTP client raises.
    """
    paging_started: datetime | None = None
    for page in _tracked(
        search_pages(client, task.resource_type, task.params, path=task.path),
        task,
        stats,
        drift_policy,
    ):
        paging_started = paging_started or page.fetched_at
        yield page
    if not (verify and task.verifiable) or paging_started is None:
        return
    for repair in range(max_repages + 1):
        missed = _missed(client, task, stats.received_in_window, paging_started)
        if missed is None:
            logger.info("%s: the server gives no counts; window not verified", task.label)
            return
        if missed <= 0:
            stats.verified = True
            return
        if repair == max_repages:
            break
        stats.repages += 1
        assert task.window is not None
        in_window = search_ids(
            client,
            task.resource_type,
            {**task.window.params("_lastUpdated"), "_count": str(_ID_PAGE_SIZE)},
        )
        missing = sorted(in_window - stats.received_in_window)
        logger.warning(
            "%s: %d resource(s) missed while paging (pages shifted under updates); "
            "fetching %d by id (repair %d of %d)",
            task.label,
            missed,
            len(missing),
            repair + 1,
            max_repages,
        )
        for start in range(0, len(missing), _ID_BATCH):
            batch = missing[start : start + _ID_BATCH]
            params = {"_id": ",".join(batch), "_count": str(len(batch))}
            yield from _tracked(
                search_pages(client, task.resource_type, params), task, stats, drift_policy
            )
    raise IncompleteWindowError(
        f"{task.label}: {missed} resource(s) still missing after {max_repages} repair(s); "
        "the cursor did not move, the next run pulls the window again"
    )


def _tracked(
    pages: Iterator[SearchPage],
    task: PullTask,
    stats: PullStats,
    drift_policy: DriftPolicy | None = None,
) -> Iterator[SearchPage]:
    """Count pages and note which ids arrived inside the window; stop at schema drift."""
    for page in pages:
        failing = _failing_elements(page, drift_policy) if page.unknown_elements else {}
        if failing:
            raise _drift_error(page, failing)
        stats.pages += 1
        stats.resources += len(page.accepted)
        if task.window is not None:
            stats.received_in_window.update(
                resource.id
                for resource in page.accepted
                if resource.resource_type == task.resource_type
                and task.window.contains(resource.last_updated)
            )
        yield page


def _missed(
    client: JsonGetter, task: PullTask, received: set[str], paging_started: datetime
) -> int | None:
    assert task.window is not None
    window_params = task.window.params("_lastUpdated")
    try:
        now_in_window = search_count(client, task.resource_type, window_params)
    except RequestRejected:
        return None
    if now_in_window is None:
        return None
    moved_after = max(paging_started - _CLOCK_MARGIN, task.window.end)
    moved = search_ids(
        client, task.resource_type, {"_lastUpdated": f"gt{fhir_instant(moved_after)}"}
    )
    return now_in_window - len(received - moved)
