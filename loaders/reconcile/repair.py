"""Repair differing windows through the REST loader's own path, one merge per phase.

Re-pulling a window is the sync's task code (:mod:`loaders.rest.tasks` through
:class:`loaders.rest.runner.TaskRunner`): pages land first, the window is verified by count
and what paging missed is fetched by id; the version filter drops what the warehouse already
holds, so a re-pull changes only what was missing or stale (the merge is idempotent). The id
phase fetches by ``_id`` the same way, then marks deleted what the source no longer returns
(:mod:`loaders.reconcile.deletes`), in the same dlt load: the marks and the rows fetched with
them are merged together or not at all.

Neither phase moves a sync cursor or backfill checkpoint.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import dlt

from loaders.fhir import table_name_for
from loaders.ingest import PageIngest
from loaders.landing import LandingZone
from loaders.reconcile.compare import WindowCheck
from loaders.reconcile.deletes import DELETED_PAGES, deletion_bundle, deletion_rows
from loaders.reconcile.sweep import IdDifference, Presence, fetch_tasks
from loaders.reconcile.warehouse import StoredRow
from loaders.rest.config import RestSourceConfig, Strategy
from loaders.rest.runner import RunnerOptions, TaskGroup, TaskRunner
from loaders.rest.search import JsonGetter, SearchPage
from loaders.rest.tasks import PullTask
from loaders.runs import merge
from loaders.settings import LoadSettings
from loaders.validation import validator_for
from loaders.warehouse.operational import QuarantineRecord, RunRecord
from loaders.warehouse.version_filter import DuckDBVersionFilter

logger = logging.getLogger(__name__)


class RepairSession:
    """What the repairs of one reconciliation run share: client, landing zone, pipeline, run."""

    def __init__(
        self,
        config: RestSourceConfig,
        settings: LoadSettings,
        client: JsonGetter,
        *,
        sort: dict[str, bool],
        run: RunRecord,
        zone: LandingZone,
        pipeline: dlt.Pipeline,
    ) -> None:
        self.config = config
        self.settings = settings
        self.client = client
        self.sort = sort
        self.run = run
        self.zone = zone
        self.pipeline = pipeline
        self.quarantined: list[QuarantineRecord] = []

    def _runner(self, on_page: Callable[[SearchPage], None] | None = None) -> TaskRunner:
        return TaskRunner(
            self.client,
            RunnerOptions(
                concurrency=self.config.concurrency,
                verify_windows=self.config.verify_windows,
                max_repages=self.config.max_window_repages,
            ),
            threading.Event(),
            on_page=on_page,
        )

    def _window_task(self, check: WindowCheck) -> PullTask:
        params: dict[str, str | list[str]] = {
            "_count": str(self.config.page_size),
            **check.window.params("_lastUpdated"),
        }
        if self.sort.get(check.resource_type):
            params["_sort"] = "_lastUpdated"
        return PullTask(
            check.resource_type,
            Strategy.LAST_UPDATED,
            params,
            check.window,
            f"{check.describe()} (reconcile)",
        )

    def repull(self, checks: list[WindowCheck]) -> None:
        """Pull each window again with the sync's task code; merge everything in one load.

        A window whose pull fails gets the error on its check; the others are merged.
        """
        groups = [TaskGroup(check.resource_type, [self._window_task(check)]) for check in checks]
        runner = self._runner()

        def produce(version_filter: DuckDBVersionFilter) -> Iterator[Any]:
            ingest = PageIngest(
                self.zone,
                version_filter,
                self.run,
                self.settings.page_size,
                validator=validator_for(self.settings.validation),
            )
            try:
                yield from runner.batches(groups, ingest)
                ingest.flush_quarantine(datetime.now(UTC))
            finally:
                self.quarantined.extend(ingest.quarantined)

        merge(self.pipeline, self.settings, produce)
        for check, group in zip(checks, groups, strict=True):
            check.repaired = True
            check.resources_fetched += group.stats.resources
            if group.error is not None:
                check.error = str(group.error)

    def fix_by_ids(
        self, differences: list[IdDifference], candidates: dict[str, list[StoredRow]]
    ) -> None:
        """Fetch every differing id by ``_id``; mark deleted the stored ones not returned.

        Args:
            differences: Per window, the ids only one side has.
            candidates: Per type, the stored rows of the ``extra`` ids (the rows a deletion
                mark would replace), read before the merge.
        """
        wanted: dict[str, set[str]] = defaultdict(set)
        for difference in differences:
            wanted[difference.check.resource_type] |= difference.to_fetch
        groups = {
            resource_type: TaskGroup(
                resource_type, fetch_tasks(resource_type, ids, f"{resource_type} reconcile")
            )
            for resource_type, ids in sorted(wanted.items())
            if ids
        }
        presence = Presence()
        runner = self._runner(on_page=presence.note)
        marked: dict[str, set[str]] = defaultdict(set)

        def produce(version_filter: DuckDBVersionFilter) -> Iterator[Any]:
            ingest = PageIngest(
                self.zone,
                version_filter,
                self.run,
                self.settings.page_size,
                validator=validator_for(self.settings.validation),
            )
            try:
                yield from runner.batches(list(groups.values()), ingest)
                ingest.flush_quarantine(datetime.now(UTC))
            finally:
                self.quarantined.extend(ingest.quarantined)
            for resource_type, rows in sorted(candidates.items()):
                group = groups.get(resource_type)
                if group is None or group.error is not None or group.paused:
                    continue  # absence is not proven when the searches by _id did not finish
                if resource_type in presence.uncertain:
                    logger.warning(
                        "%s: a resource returned by _id could not be read; no deletion marked",
                        resource_type,
                    )
                    continue
                seen = presence.seen.get(resource_type, set())
                gone = [row for row in rows if row.id not in seen]
                batch = self._deletion_batch(resource_type, gone, version_filter)
                if batch is not None:
                    marked[resource_type].update(batch.column("id").to_pylist())
                    yield table_name_for(resource_type), batch

        merge(self.pipeline, self.settings, produce)
        for difference in differences:
            check = difference.check
            group = groups.get(check.resource_type)
            seen = presence.seen.get(check.resource_type, set())
            check.ids_compared = True
            check.resources_fetched += len(difference.to_fetch & seen)
            check.marked_deleted += len(difference.extra & marked[check.resource_type])
            check.repaired = check.repaired or bool(difference.to_fetch)
            if group is not None and group.error is not None:
                check.error = str(group.error)

    def _deletion_batch(
        self, resource_type: str, gone: list[StoredRow], version_filter: DuckDBVersionFilter
    ) -> Any:
        """Land the deletions of one type and return their raw rows (None when none pass)."""
        if not gone:
            return None
        noticed_at = datetime.now(UTC)
        page = self.zone.write_page(
            DELETED_PAGES,
            [deletion_bundle(resource_type, row.id, noticed_at) for row in gone],
            noticed_at,
            request_ids=[self.run.run_id] * len(gone),
            deletes="mark",
        )
        batch = deletion_rows(
            resource_type,
            gone,
            source_system=self.zone.source_system,
            noticed_at=noticed_at,
            run_id=self.run.run_id,
            landing_file=page.landing_file,
        )
        changed = version_filter.keep_newer(table_name_for(resource_type), batch)
        self.run.landing_pages += 1
        self.run.resources_merged += changed.num_rows
        self.run.merged_by_type[resource_type] = (
            self.run.merged_by_type.get(resource_type, 0) + changed.num_rows
        )
        logger.warning(
            "%s: %d resource(s) no longer on the source, marked deleted",
            resource_type,
            changed.num_rows,
        )
        return changed if changed.num_rows else None
