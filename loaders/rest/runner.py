"""Run pull tasks on a pool of workers and turn their pages into landed, filtered batches.

Workers (``concurrency`` threads, sharing the client's rate limit) page through tasks and hand
pages over a small bounded queue; the calling thread lands each page, quarantines refused
entries and yields the changed rows to the merge. Memory stays at a few pages whatever the
size of the source. When every task of a :class:`TaskGroup` has finished, the group's state
updates (a cursor, a backfill checkpoint) are yielded after its rows, so dlt commits them in
the same load: a cursor never moves ahead of what was merged.

A task that fails (auth, schema drift, retries exhausted, an incomplete window) fails only its
group: the other types go on, and the failed type's cursor stays where it was.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from loaders.exceptions import ExtractError, FhirEltError
from loaders.ingest import PageIngest
from loaders.resources import ParsedResource
from loaders.rest.search import JsonGetter, SearchPage
from loaders.rest.tasks import PullStats, PullTask, pull
from loaders.warehouse.pipeline import StateUpdate

logger = logging.getLogger(__name__)


class _Paused(Exception):
    """A worker saw the stop signal between two pages."""


class _Aborted(Exception):
    """The consuming thread is gone; a worker must not block on the queue."""


@dataclass(slots=True)
class TaskGroup:
    """Tasks whose success together moves one state entry (a type's cursor or checkpoint).

    Attributes:
        resource_type: The type the group is for.
        tasks: Its searches (one window, or one per patient).
        on_success: State to commit once every task finished without error.
        error: The first error of a task, when one failed.
        paused: Whether a stop signal interrupted one of its tasks.
    """

    resource_type: str
    tasks: list[PullTask]
    on_success: list[StateUpdate] = field(default_factory=list)
    error: FhirEltError | None = None
    paused: bool = False
    finished: int = 0
    stats: PullStats = field(default_factory=PullStats)

    @property
    def succeeded(self) -> bool:
        """Every task finished, none failed or paused."""
        return self.finished == len(self.tasks) and self.error is None and not self.paused


@dataclass(slots=True)
class RunnerOptions:
    """How tasks run."""

    concurrency: int = 2
    verify_windows: bool = True
    max_repages: int = 2
    queue_pages: int = 4


class TaskRunner:
    """Runs task groups and yields ``(table, batch)`` pairs and :class:`StateUpdate` items."""

    def __init__(
        self,
        client: JsonGetter,
        options: RunnerOptions,
        stop: threading.Event,
        on_page: Callable[[SearchPage], None] | None = None,
        on_task_done: Callable[[PullTask], None] | None = None,
    ) -> None:
        self.client = client
        self.options = options
        self.stop = stop
        self.on_page = on_page
        self.on_task_done = on_task_done

    def batches(
        self, groups: Sequence[TaskGroup], ingest: PageIngest
    ) -> Iterator[tuple[str, pa.Table] | StateUpdate]:
        """Pull every task of ``groups``; land, quarantine and yield as pages arrive."""
        tasks = [(group, task) for group in groups for task in group.tasks]
        if not tasks:
            return
        handoff: queue.Queue[tuple[str, TaskGroup, PullTask, object]] = queue.Queue(
            maxsize=self.options.queue_pages
        )
        aborted = threading.Event()

        def put(item: tuple[str, TaskGroup, PullTask, object]) -> None:
            while True:
                try:
                    handoff.put(item, timeout=0.2)
                    return
                except queue.Full:
                    if aborted.is_set():
                        raise _Aborted from None

        def work(group: TaskGroup, task: PullTask) -> None:
            outcome: object = None
            try:
                if self.stop.is_set() or aborted.is_set():
                    raise _Paused
                stats = PullStats()
                for page in pull(
                    self.client,
                    task,
                    stats,
                    verify=self.options.verify_windows,
                    max_repages=self.options.max_repages,
                    drift_policy=ingest.drift.policy,
                ):
                    put(("page", group, task, page))
                    if self.stop.is_set():
                        raise _Paused
                outcome = stats
            except _Aborted:
                return
            except _Paused:
                outcome = _Paused()
            except FhirEltError as error:
                outcome = error
            except Exception as error:  # a bug or a library error: reported by type only
                outcome = ExtractError(
                    f"{task.label}: unexpected {type(error).__name__} while paging"
                )
            try:
                put(("done", group, task, outcome))
            except _Aborted:
                return

        executor = ThreadPoolExecutor(
            max_workers=self.options.concurrency, thread_name_prefix="fhir-pull"
        )
        try:
            for group, task in tasks:
                executor.submit(work, group, task)
            remaining = len(tasks)
            while remaining:
                kind, group, task, payload = handoff.get()
                if kind == "page":
                    assert isinstance(payload, SearchPage)
                    yield from self._land(payload, ingest)
                    continue
                remaining -= 1
                group.finished += 1
                self._finish(group, task, payload)
                if group.finished == len(group.tasks) and group.succeeded:
                    yield from group.on_success
        finally:
            aborted.set()
            executor.shutdown(wait=True, cancel_futures=True)

    def _finish(self, group: TaskGroup, task: PullTask, outcome: object) -> None:
        if isinstance(outcome, _Paused):
            group.paused = True
        elif isinstance(outcome, FhirEltError):
            if group.error is None:
                group.error = outcome
            logger.error("%s: %s", task.label, outcome)
        elif isinstance(outcome, PullStats):
            group.stats.pages += outcome.pages
            group.stats.resources += outcome.resources
            group.stats.repages += outcome.repages
        if self.on_task_done is not None:
            self.on_task_done(task)

    def _land(self, page: SearchPage, ingest: PageIngest) -> Iterator[tuple[str, pa.Table]]:
        run = ingest.run
        run.resources_read += len(page.accepted) + len(page.rejected)
        for index, rejection, raw in page.rejected:
            ingest.quarantine(rejection, page.where, index, raw, page.fetched_at)
        by_type: dict[str, list[ParsedResource]] = defaultdict(list)
        for resource in page.accepted:
            by_type[resource.resource_type].append(resource)
        for resource_type, resources in by_type.items():
            landed = ingest.land(
                resource_type, resources, [page.request_id] * len(resources), page.fetched_at
            )
            if landed is not None:
                yield landed
        if self.on_page is not None:
            self.on_page(page)
