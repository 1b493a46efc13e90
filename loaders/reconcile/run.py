"""``fhir-elt reconcile``: count, compare, repair within a budget, sweep for deletions, record.

1. Count. Per resource type, the range ``(since, until]`` on ``_lastUpdated`` is counted on
   both sides and bisected where the counts differ (:mod:`loaders.reconcile.windows`).
   ``until`` defaults to, and never exceeds, the type's sync cursor: past it the warehouse is
   not supposed to be complete yet. Types whose server cannot search ``_lastUpdated`` are
   skipped and named in the report.
2. Repair, at most ``repair_budget`` windows (largest difference first): each is pulled again
   with the sync's task code and merged; windows that still differ have their ids compared
   (:mod:`loaders.reconcile.sweep`), the differing ids are fetched by ``_id``, and the stored
   resources the source no longer returns are marked deleted (:mod:`loaders.reconcile.deletes`).
3. Sweep (``sweep_deletes``): the ids of every other counted window are compared as well, since
   a deletion can hide behind a hole in the same window (equal counts). Ids only, so no budget.
4. Record: one ``reconciliation_checks`` row per window (counts after repair, what was done,
   the status), plus the run's ``load_runs``, ``landing_manifest`` and ``request_log`` rows.

The command exits non-zero (5) when a window still differs after repair or was left over the
budget; the rows say which, and running it again continues the repair.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dlt

from loaders.exceptions import ExtractError, RequestRejected, WarehouseError
from loaders.landing import LandingZone
from loaders.reconcile.compare import FAILING, WindowCheck, checks_resource, choose_repairs
from loaders.reconcile.repair import RepairSession
from loaders.reconcile.sweep import IdDifference, compare_ids, source_ids
from loaders.reconcile.warehouse import StoredRow, WarehouseView
from loaders.reconcile.windows import bisect_windows, floor_ms
from loaders.rest.capabilities import Capabilities
from loaders.rest.config import RestSourceConfig
from loaders.rest.search import JsonGetter, search_count
from loaders.rest.sync import STATE_ROOT
from loaders.rest.windows import Window, parse_checkpoint
from loaders.runs import new_run_id, record_run, safe_error, write_manifest
from loaders.settings import LoadSettings
from loaders.warehouse.operational import (
    QuarantineRecord,
    RunRecord,
    request_log_table,
)
from loaders.warehouse.pipeline import make_pipeline, read_raw_state

logger = logging.getLogger(__name__)

# The command's exit status when differences remain (see loaders/cli.py).
EXIT_DELTAS_REMAIN = 5


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    """What to reconcile and how much to repair.

    Attributes:
        since: Start of the range (exclusive); None: from the beginning.
        until: End of the range (inclusive); default and upper limit: each type's cursor
            (the server's now for a type never synced by ``load rest``).
        repair_budget: Windows repaired at most in this run.
        sweep_deletes: Compare ids in every window, not only in the differing ones.
        window_resources: Differing windows are bisected down to this many resources.
    """

    since: datetime | None = None
    until: datetime | None = None
    repair_budget: int = 20
    sweep_deletes: bool = False
    window_resources: int = 1000


@dataclass(slots=True)
class ReconcileContext:
    """A reconciliation's source: configuration, settings, client and the server's capabilities."""

    config: RestSourceConfig
    settings: LoadSettings
    client: JsonGetter
    capabilities: Capabilities


@dataclass(slots=True)
class ReconcileReport:
    """What a reconciliation found and did."""

    run: RunRecord
    options: ReconcileOptions
    checks: list[WindowCheck] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    requests: list[Any] = field(default_factory=list)
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    windows_repaired: int = 0

    @property
    def failing(self) -> list[WindowCheck]:
        """Windows that still differ, or were left over the budget."""
        return [check for check in self.checks if check.status in FAILING]

    @property
    def exit_code(self) -> int:
        """5 when differences remain, 3 when repairs quarantined resources, else 0."""
        if self.failing:
            return EXIT_DELTAS_REMAIN
        return 3 if self.run.resources_quarantined else 0


def _source_counter(ctx: ReconcileContext, resource_type: str) -> Callable[[Window], int | None]:
    def count(window: Window) -> int | None:
        try:
            return search_count(ctx.client, resource_type, window.params("_lastUpdated"))
        except RequestRejected:
            return None

    return count


def _range(ctx: ReconcileContext, options: ReconcileOptions, cursor: str | None) -> Window | None:
    end = parse_checkpoint(cursor) or ctx.capabilities.server_now
    if options.until is not None:
        end = min(end, options.until)
    start = None if options.since is None else floor_ms(options.since)
    end = floor_ms(end)
    if start is not None and start >= end:
        return None
    return Window(start, end)


def _count(
    ctx: ReconcileContext,
    resource_types: tuple[str, ...],
    options: ReconcileOptions,
    report: ReconcileReport,
    cursors: dict[str, str],
) -> None:
    with WarehouseView(ctx.settings.duckdb_path, ctx.config.name) as view:
        for resource_type in resource_types:
            if not ctx.capabilities.supports_last_updated(resource_type):
                report.skipped[resource_type] = "the server cannot search it by _lastUpdated"
                continue
            top = _range(ctx, options, cursors.get(resource_type))
            if top is None:
                report.skipped[resource_type] = "the range ends before it starts (its cursor)"
                continue
            counted = bisect_windows(
                top,
                _source_counter(ctx, resource_type),
                lambda window, t=resource_type: view.count(t, window),
                lambda window, t=resource_type: view.median(t, window),
                max_resources=options.window_resources,
            )
            now = datetime.now(UTC)
            report.checks.extend(WindowCheck.from_count(resource_type, c, now) for c in counted)


def _recount(ctx: ReconcileContext, checks: list[WindowCheck]) -> None:
    """Count the windows again on both sides, after a repair."""
    if not checks:
        return
    source_counts = [_source_counter(ctx, check.resource_type)(check.window) for check in checks]
    with WarehouseView(ctx.settings.duckdb_path, ctx.config.name) as view:
        for check, source_count in zip(checks, source_counts, strict=True):
            check.source_count = source_count
            check.warehouse_count = view.count(check.resource_type, check.window)
            check.checked_at = datetime.now(UTC)


def _differences(
    ctx: ReconcileContext, checks: list[WindowCheck]
) -> tuple[list[IdDifference], dict[str, list[StoredRow]]]:
    """Per window, the ids only one side has; per type, the stored rows of the extra ids."""
    listed: list[tuple[WindowCheck, set[str]]] = []
    for check in checks:
        try:
            listed.append((check, source_ids(ctx.client, check)))
        except ExtractError as error:
            check.error = f"ids not listed: {error}"
    differences = []
    extra: dict[str, set[str]] = {}
    with WarehouseView(ctx.settings.duckdb_path, ctx.config.name) as view:
        for check, on_source in listed:
            check.ids_compared = True
            difference = compare_ids(check, on_source, view.ids(check.resource_type, check.window))
            if difference.to_fetch:
                differences.append(difference)
                extra.setdefault(check.resource_type, set()).update(difference.extra)
        candidates = {t: view.stored_rows(t, ids) for t, ids in extra.items() if ids}
    return differences, candidates


def reconcile(
    ctx: ReconcileContext,
    resource_types: tuple[str, ...],
    options: ReconcileOptions,
    *,
    requests: list[Any] | None = None,
) -> ReconcileReport:
    """Reconcile the source's types with the warehouse (see the module docstring); record it.

    Raises:
        FhirEltError: What stopped the run (it is recorded as failed, with the checks so far).
    """
    started_at = datetime.now(UTC)
    run = RunRecord(
        new_run_id(started_at),
        ctx.config.name,
        "reconcile",
        started_at,
        credential_client_id=ctx.config.auth.credential_client_id,
    )
    run.add_resource_types(resource_types)
    report = ReconcileReport(run, options, requests=requests if requests is not None else [])
    zone = LandingZone(ctx.settings.landing_root, ctx.config.name, run.run_id)
    pipeline = make_pipeline(ctx.settings)
    sort = {t: ctx.capabilities.supports_sort(t) for t in resource_types}
    session = RepairSession(
        ctx.config, ctx.settings, ctx.client, sort=sort, run=run, zone=zone, pipeline=pipeline
    )
    error: BaseException | None = None
    try:
        cursors = read_raw_state(pipeline).get(STATE_ROOT, {}).get("cursors", {})
        _count(ctx, resource_types, options, report, cursors)
        to_repair, over_budget = choose_repairs(report.checks, options.repair_budget)
        for check in over_budget:
            check.over_budget = True
        report.windows_repaired = len(to_repair)
        if to_repair:
            session.repull(to_repair)
            _recount(ctx, to_repair)
        targets = [check for check in to_repair if check.differs]
        if options.sweep_deletes:
            repaired = {id(check) for check in to_repair}
            targets += [
                check
                for check in report.checks
                if check.source_count is not None
                and not check.over_budget
                and id(check) not in repaired
            ]
        if targets:
            differences, candidates = _differences(ctx, targets)
            if differences:
                session.fix_by_ids(differences, candidates)
                _recount(ctx, [difference.check for difference in differences])
    except BaseException as caught:
        error = caught
        raise
    finally:
        report.quarantined = session.quarantined
        _finish(report, zone, pipeline, error)
    return report


def _finish(
    report: ReconcileReport, zone: LandingZone, pipeline: dlt.Pipeline, error: BaseException | None
) -> None:
    """Record the checks and the run; a failure to record the checks fails the command."""
    run = report.run
    if error is not None:
        run.status, run.error = "failed", safe_error(error)
    else:
        run.status = "succeeded_with_rejects" if run.resources_quarantined else "succeeded"
    run.finished_at = datetime.now(UTC)
    write_manifest(zone, run)
    recorded: Exception | None = None
    try:
        pipeline.run(checks_resource(report.checks, run.run_id, run.source_system))
    except Exception as failure:
        recorded = failure
        logger.error("run %s: could not record its checks: %s", run.run_id, safe_error(failure))
    requests = request_log_table(run.run_id, run.source_system, report.requests)
    record_run(pipeline, zone, report.quarantined, run, requests)
    if recorded is not None and error is None:
        raise WarehouseError(
            f"run {run.run_id}: the reconciliation checks could not be recorded: "
            f"{safe_error(recorded)}"
        ) from recorded
