"""``fhir-elt load rest`` and ``fhir-elt backfill``: plan tasks, run them, commit, record.

Incremental sync (per type, by its strategy; see :class:`loaders.rest.config.Strategy`):
the window ``(cursor - overlap, server now]`` on ``_lastUpdated``; the cursor moves to the
window's end only when the window's pages are landed and merged (same dlt load).

Backfill: ``(since, until]`` is cut per type into windows of at most
``backfill_window_resources`` resources (by the server's counts). Windows run in rounds: round
``k`` is the ``k``-th window of every type, pulled in parallel, then merged and checkpointed in
one dlt load. A crash, ``kill -9`` or a pause (Ctrl-C / SIGTERM) loses at most the current
round; running the same command again resumes after the last checkpoint.

State lives in dlt's resource state (``rest.cursors``, ``rest.synced_at``, ``rest.backfills``),
stored in the warehouse with the rows, so an ephemeral runner restores it from there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from loaders.exceptions import ConfigError, RequestRejected
from loaders.fhir import table_name_for
from loaders.ingest import PageIngest
from loaders.landing import LandingZone
from loaders.log_redaction import bind_run_id
from loaders.ops.metrics import timed
from loaders.rest.capabilities import Capabilities
from loaders.rest.config import RestSourceConfig, Strategy
from loaders.rest.progress import Progress
from loaders.rest.runner import RunnerOptions, TaskGroup, TaskRunner
from loaders.rest.search import JsonGetter, Params, SearchPage, search_count
from loaders.rest.tasks import PullTask
from loaders.rest.windows import (
    Window,
    fhir_instant,
    incremental_window,
    parse_checkpoint,
    plan_windows,
)
from loaders.runs import merge, new_run_id, record_run, safe_error, write_manifest
from loaders.settings import LoadSettings
from loaders.validation import validator_for
from loaders.warehouse.connect import connect_warehouse
from loaders.warehouse.operational import RunRecord
from loaders.warehouse.pipeline import StateUpdate, make_pipeline, read_raw_state
from loaders.warehouse.raw_tables import RAW_DATASET
from loaders.warehouse.version_filter import DuckDBVersionFilter

logger = logging.getLogger(__name__)

STATE_ROOT = "rest"


@dataclass(slots=True)
class TypeOutcome:
    """How one resource type fared in a run."""

    resource_type: str
    status: str  # succeeded | failed | paused | skipped
    pages: int = 0
    resources: int = 0
    repages: int = 0
    cursor: str | None = None
    error: str | None = None
    error_kind: str | None = None  # the exception class, e.g. SchemaDriftError


@dataclass(slots=True)
class SyncReport:
    """What a REST run did.

    ``quarantined`` and ``warehouse_seconds`` (time spent merging) feed the run's metrics;
    ``notices`` and ``metrics`` are filled by the command layer (budget stops, metrics rows).
    """

    run: RunRecord
    outcomes: dict[str, TypeOutcome] = field(default_factory=dict)
    requests: list[Any] = field(default_factory=list)
    windows_total: int = 0
    windows_done: int = 0
    quarantined: list[Any] = field(default_factory=list)
    warehouse_seconds: float = 0.0
    notices: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 if a type failed, 4 if paused (resume by running again), 3 quarantine, else 0."""
        statuses = {outcome.status for outcome in self.outcomes.values()}
        if "failed" in statuses:
            return 1
        if "paused" in statuses:
            return 4
        return 3 if self.run.resources_quarantined else 0


@dataclass(slots=True)
class SyncContext:
    """What one run shares: config, settings, client, the server's capabilities, the stop flag."""

    config: RestSourceConfig
    settings: LoadSettings
    client: JsonGetter
    capabilities: Capabilities
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Progress | None = None


def _base_params(ctx: SyncContext, resource_type: str, sort: bool) -> dict[str, str | list[str]]:
    params: dict[str, str | list[str]] = {"_count": str(ctx.config.page_size)}
    if sort and ctx.capabilities.supports_sort(resource_type):
        params["_sort"] = "_lastUpdated"
    return params


def _check_strategy(ctx: SyncContext, resource_type: str) -> Strategy:
    strategy = ctx.config.type_config(resource_type).strategy
    if strategy is Strategy.LAST_UPDATED and not ctx.capabilities.supports_last_updated(
        resource_type
    ):
        raise ConfigError(
            f"{resource_type}: the server's CapabilityStatement does not list _lastUpdated "
            f"search; set sources.fhir_rest.{ctx.config.name}.types.{resource_type}.strategy "
            "to clinical_date, full_sweep or per_patient"
        )
    return strategy


def _patient_ids(settings: LoadSettings, source_system: str) -> list[str]:
    """Ids of the patients already loaded from this source (per-patient strategy)."""
    if settings.on_snowflake:
        raise ConfigError(
            "the per_patient strategy reads patient ids from the DuckDB warehouse; with "
            "destination snowflake use clinical_date, full_sweep or _lastUpdated instead"
        )
    if not settings.duckdb_path.exists():
        return []
    try:
        with connect_warehouse(settings.duckdb_path, read_only=True) as connection:
            rows = connection.execute(
                f"select id from {RAW_DATASET}.{table_name_for('Patient')} "
                "where source_system = ? and not is_deleted order by id",
                [source_system],
            ).fetchall()
    except duckdb.Error:
        return []
    return [patient_id for (patient_id,) in rows]


def _window_tasks(
    ctx: SyncContext, resource_type: str, strategy: Strategy, window: Window | None, label: str
) -> list[PullTask]:
    """The searches that pull ``window`` of a type by its strategy."""
    type_config = ctx.config.type_config(resource_type)
    if strategy is Strategy.LAST_UPDATED:
        params: Params = {**_base_params(ctx, resource_type, True)}
        if window is not None:
            params = {**params, **window.params("_lastUpdated")}
        return [PullTask(resource_type, strategy, params, window, label)]
    if strategy is Strategy.CLINICAL_DATE:
        params = {**_base_params(ctx, resource_type, False)}
        if window is not None:
            params = {**params, **window.params(type_config.date_param)}
        return [PullTask(resource_type, strategy, params, window, label)]
    if strategy is Strategy.FULL_SWEEP:
        return [
            PullTask(resource_type, strategy, _base_params(ctx, resource_type, False), None, label)
        ]
    patients = _patient_ids(ctx.settings, ctx.config.name)
    tasks = []
    for number, patient_id in enumerate(patients, start=1):
        params = {**_base_params(ctx, resource_type, False), "patient": f"Patient/{patient_id}"}
        if window is not None and ctx.capabilities.supports_last_updated(resource_type):
            params.update(window.params("_lastUpdated"))
        tasks.append(
            PullTask(
                resource_type, strategy, params, None, f"{label} patient {number}/{len(patients)}"
            )
        )
    return tasks


def _state_path(*keys: str) -> tuple[str, ...]:
    return (STATE_ROOT, *keys)


class _Run:
    """One REST run: its record, landing zone, pipeline, and the rounds it commits."""

    def __init__(self, ctx: SyncContext, command: str) -> None:
        self.ctx = ctx
        started_at = datetime.now(UTC)
        self.run = RunRecord(
            run_id=new_run_id(started_at),
            source_system=ctx.config.name,
            command=command,
            started_at=started_at,
            credential_client_id=ctx.config.auth.credential_client_id,
        )
        bind_run_id(self.run.run_id)
        self.zone = LandingZone(ctx.settings.landing_root, ctx.config.name, self.run.run_id)
        self.pipeline = make_pipeline(ctx.settings)
        self.report = SyncReport(self.run)
        self.quarantined: list[Any] = self.report.quarantined

    def plan(self, windows: int) -> None:
        self.report.windows_total = windows
        if self.ctx.progress is not None:
            self.ctx.progress.plan(windows)

    def state(self) -> dict[str, Any]:
        return read_raw_state(self.pipeline).get(STATE_ROOT, {})

    def commit_round(self, groups: list[TaskGroup]) -> None:
        """Pull every group's tasks, then merge the pages and commit the groups' state."""
        ctx = self.ctx
        runner = TaskRunner(
            ctx.client,
            RunnerOptions(
                concurrency=ctx.config.concurrency,
                verify_windows=ctx.config.verify_windows,
                max_repages=ctx.config.max_window_repages,
            ),
            ctx.stop,
            on_page=self._on_page,
            on_task_done=self._on_task_done,
        )
        ingest_box: list[PageIngest] = []

        def produce(version_filter: DuckDBVersionFilter) -> Iterator[Any]:
            ingest = PageIngest(
                self.zone,
                version_filter,
                self.run,
                ctx.settings.page_size,
                validator=validator_for(ctx.settings.validation),
            )
            ingest_box.append(ingest)
            yield from timed(runner.batches(groups, ingest), pulling)
            ingest.flush_quarantine(datetime.now(UTC))
            yield from ingest.empty_core_tables()

        # Warehouse time: the merge minus the time spent pulling pages inside it.
        pulling: list[float] = []
        merge_started = time.monotonic()
        try:
            merge(self.pipeline, ctx.settings, produce)
        finally:
            merged_in = time.monotonic() - merge_started - sum(pulling)
            self.report.warehouse_seconds += max(0.0, merged_in)
            if ingest_box:
                self.quarantined.extend(ingest_box[0].quarantined)
        for group in groups:
            self._account(group)

    def _on_page(self, page: SearchPage) -> None:
        if self.ctx.progress is not None:
            self.ctx.progress("page", len(page.accepted))

    def _on_task_done(self, task: PullTask) -> None:
        self.report.windows_done += 1
        if self.ctx.progress is not None:
            self.ctx.progress("task", 1)

    def _account(self, group: TaskGroup) -> None:
        outcome = self.report.outcomes.setdefault(
            group.resource_type, TypeOutcome(group.resource_type, "succeeded")
        )
        outcome.pages += group.stats.pages
        outcome.resources += group.stats.resources
        outcome.repages += group.stats.repages
        if group.error is not None:
            outcome.status, outcome.error = "failed", str(group.error)
            outcome.error_kind = type(group.error).__name__
        elif group.paused and outcome.status != "failed":
            outcome.status = "paused"
        for update in group.on_success if group.succeeded else []:
            if update.path[:2] == (STATE_ROOT, "cursors"):
                outcome.cursor = update.value

    def finish(self, error: BaseException | None) -> SyncReport:
        """Record the run (always), and return the report."""
        run = self.run
        statuses = {outcome.status for outcome in self.report.outcomes.values()}
        if error is not None:
            run.status, run.error = "failed", safe_error(error)
        elif "failed" in statuses:
            run.status = "partially_failed"
            run.error = "; ".join(
                f"{o.resource_type}: {o.error}"
                for o in self.report.outcomes.values()
                if o.status == "failed"
            )[:2000]
        elif "paused" in statuses:
            run.status = "paused"
        else:
            run.status = "succeeded_with_rejects" if run.resources_quarantined else "succeeded"
        run.finished_at = datetime.now(UTC)
        write_manifest(self.zone, run)
        requests = _request_table(run, self.report.requests)
        record_run(self.pipeline, self.zone, self.quarantined, run, requests)
        return self.report


def _request_table(run: RunRecord, records: list[Any]) -> Any:
    from loaders.warehouse.operational import request_log_table

    return request_log_table(run.run_id, run.source_system, records)


def _due(ctx: SyncContext, state: dict[str, Any], resource_type: str, now: datetime) -> bool:
    every = max((g.every_minutes for g in ctx.config.groups if resource_type in g.types), default=0)
    synced_at = parse_checkpoint(state.get("synced_at", {}).get(resource_type))
    return synced_at is None or every == 0 or now - synced_at >= timedelta(minutes=every)


def sync_incremental(
    ctx: SyncContext,
    resource_types: tuple[str, ...],
    *,
    force: bool = False,
    requests: list[Any] | None = None,
) -> SyncReport:
    """Pull what changed since each type's cursor (minus the overlap), in one dlt load.

    Patient goes first in its own round when the per-patient strategy needs its ids.
    """
    runner = _Run(ctx, "load rest")
    runner.run.add_resource_types(resource_types)
    if requests is not None:
        runner.report.requests = requests
    error: BaseException | None = None
    try:
        state = runner.state()
        cursors = state.get("cursors", {})
        now = ctx.capabilities.server_now
        overlap = timedelta(hours=ctx.config.overlap_hours)
        groups: list[TaskGroup] = []
        per_patient: list[tuple[str, Window, str, list[StateUpdate]]] = []
        for resource_type in resource_types:
            if not force and not _due(ctx, state, resource_type, datetime.now(UTC)):
                runner.report.outcomes[resource_type] = TypeOutcome(resource_type, "skipped")
                continue
            strategy = _check_strategy(ctx, resource_type)
            cursor = parse_checkpoint(cursors.get(resource_type))
            if strategy is Strategy.CLINICAL_DATE:
                lookback = timedelta(days=ctx.config.type_config(resource_type).lookback_days)
                window = None if cursor is None else Window(cursor - lookback, now, open_end=True)
            else:
                window = incremental_window(cursor, overlap, now)
            label = f"{resource_type} {window.describe() if window else 'all'}"
            updates = [
                StateUpdate(_state_path("cursors", resource_type), fhir_instant(now)),
                StateUpdate(
                    _state_path("synced_at", resource_type), fhir_instant(datetime.now(UTC))
                ),
            ]
            if strategy is Strategy.PER_PATIENT:
                assert window is not None
                per_patient.append((resource_type, window, label, updates))
                continue
            tasks = _window_tasks(ctx, resource_type, strategy, window, label)
            groups.append(TaskGroup(resource_type, tasks, on_success=updates))
        runner.plan(sum(len(g.tasks) for g in groups))
        runner.commit_round(groups)
        if per_patient:
            # Planned after the first round, so patients this run loaded are included.
            patient_groups = [
                TaskGroup(
                    resource_type,
                    _window_tasks(ctx, resource_type, Strategy.PER_PATIENT, window, label),
                    on_success=updates,
                )
                for resource_type, window, label, updates in per_patient
            ]
            runner.plan(runner.report.windows_total + sum(len(g.tasks) for g in patient_groups))
            runner.commit_round(patient_groups)
    except BaseException as caught:
        error = caught
        raise
    finally:
        report = runner.finish(error)
    return report


def _count_or_none(
    ctx: SyncContext, resource_type: str, parameter: str
) -> Callable[[Window], int | None]:
    def count(window: Window) -> int | None:
        try:
            return search_count(ctx.client, resource_type, window.params(parameter))
        except RequestRejected:
            return None

    return count


def backfill(
    ctx: SyncContext,
    resource_types: tuple[str, ...],
    since: datetime,
    until: datetime | None,
    *,
    requests: list[Any] | None = None,
) -> SyncReport:
    """Pull ``(since, until]`` window by window, checkpointing each round; resumable.

    The job is identified by its ``since`` and ``until`` (``now`` when open-ended: the first
    run fixes it to the server's clock and stores it, so a resumed job keeps its end).
    """
    runner = _Run(ctx, "backfill")
    runner.run.add_resource_types(resource_types)
    if requests is not None:
        runner.report.requests = requests
    error: BaseException | None = None
    try:
        state = runner.state()
        job = f"{fhir_instant(since)}..{fhir_instant(until) if until else 'now'}"
        job_state = state.get("backfills", {}).get(job, {})
        end = parse_checkpoint(job_state.get("until")) or until or ctx.capabilities.server_now
        done = job_state.get("done", {})
        cursors = state.get("cursors", {})
        plans: dict[str, list[Window]] = {}
        strategies: dict[str, Strategy] = {}
        for resource_type in resource_types:
            strategy = strategies[resource_type] = _check_strategy(ctx, resource_type)
            start = parse_checkpoint(done.get(resource_type)) or since
            if start >= end:
                runner.report.outcomes[resource_type] = TypeOutcome(resource_type, "succeeded")
                continue
            if strategy in (Strategy.FULL_SWEEP, Strategy.PER_PATIENT):
                plans[resource_type] = [Window(start, end)]
                continue
            parameter = (
                "_lastUpdated"
                if strategy is Strategy.LAST_UPDATED
                else ctx.config.type_config(resource_type).date_param
            )
            plans[resource_type] = plan_windows(
                start,
                end,
                _count_or_none(ctx, resource_type, parameter),
                max_resources=ctx.config.backfill_window_resources,
                min_span=timedelta(hours=ctx.config.backfill_min_window_hours),
                fallback_span=timedelta(days=ctx.config.backfill_window_days),
            ) or [Window(start, end)]
        runner.plan(sum(len(windows) for windows in plans.values()))
        rounds = max((len(windows) for windows in plans.values()), default=0)
        for number in range(rounds):
            if ctx.stop.is_set():
                for resource_type, windows in plans.items():
                    outcome = runner.report.outcomes.setdefault(
                        resource_type, TypeOutcome(resource_type, "paused")
                    )
                    if number < len(windows) and outcome.status != "failed":
                        outcome.status = "paused"
                break
            groups = []
            for resource_type, windows in plans.items():
                outcome = runner.report.outcomes.get(resource_type)
                if number >= len(windows) or (outcome and outcome.status == "failed"):
                    continue
                window = windows[number]
                label = f"{resource_type} backfill window {number + 1}/{len(windows)} {window.describe()}"  # noqa: E501
                updates = [
                    StateUpdate(_state_path("backfills", job, "until"), fhir_instant(end)),
                    StateUpdate(
                        _state_path("backfills", job, "done", resource_type),
                        fhir_instant(window.end),
                    ),
                ]
                last = number == len(windows) - 1
                cursor = parse_checkpoint(cursors.get(resource_type))
                if last and (cursor is None or cursor < end):
                    updates.append(
                        StateUpdate(_state_path("cursors", resource_type), fhir_instant(end))
                    )
                groups.append(
                    TaskGroup(
                        resource_type,
                        _window_tasks(ctx, resource_type, strategies[resource_type], window, label),
                        on_success=updates,
                    )
                )
            runner.commit_round(groups)
    except BaseException as caught:
        error = caught
        raise
    finally:
        report = runner.finish(error)
    return report
