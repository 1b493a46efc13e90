"""The REST commands behind the CLI: ``load rest`` and ``backfill``, and their printed report."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from loaders.exceptions import ConfigError
from loaders.http import RequestRecord
from loaders.log_redaction import bind_request_id, bind_run_id
from loaders.ops.budgets import BudgetMeter, RunBudget
from loaders.ops.metrics import describe_row, run_metrics_rows, write_run_metrics
from loaders.rest.capabilities import read_capabilities
from loaders.rest.config import RestSourceConfig, load_rest_source_config
from loaders.rest.connect import open_client
from loaders.rest.pause import pause_on_signals
from loaders.rest.progress import Progress
from loaders.rest.sync import SyncContext, SyncReport, backfill, sync_incremental
from loaders.settings import LoadSettings


def _types(config: RestSourceConfig, group: str | None, types: str | None) -> tuple[str, ...]:
    if types:
        chosen = tuple(t.strip() for t in types.split(",") if t.strip())
        unknown = [t for t in chosen if t not in config.resource_types]
        if unknown:
            raise ConfigError(
                f"source {config.name!r} does not configure {', '.join(unknown)} "
                f"(configured: {', '.join(config.resource_types)})"
            )
        return chosen
    if group:
        wanted = set(config.group(group).types)
        return tuple(t for t in config.resource_types if t in wanted)
    return config.resource_types


def run_rest(
    source: str,
    settings: LoadSettings,
    *,
    group: str | None = None,
    types: str | None = None,
    force: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: bool | None = None,
    config: RestSourceConfig | None = None,
    budget: RunBudget | None = None,
) -> SyncReport:
    """Run an incremental sync, or a backfill when ``since`` is given; record its metrics.

    Args:
        source: The source's name in the dlt config (``sources.fhir_rest.<source>``); it is
            also the ``source_system`` of every row.
        settings: Warehouse and landing zone (its source_system is replaced by ``source``).
        group: Only this schedule group's types.
        types: Only these types (comma-separated).
        force: Sync types even when their group's schedule says they are not due.
        since: Backfill from this instant (exclusive).
        until: Backfill up to this instant (inclusive); default the server's now.
        progress: Show a progress bar (default: when stderr is a terminal).
        config: The source configuration (read from dlt config when None).
        budget: Request and page ceilings (default: the source's configured ones).
    """
    config = config or load_rest_source_config(source)
    settings = LoadSettings(
        duckdb_path=settings.duckdb_path,
        landing_root=settings.landing_root,
        source_system=config.name,
        page_size=settings.page_size,
        pipelines_dir=settings.pipelines_dir,
        duckdb_memory_limit=settings.duckdb_memory_limit,
        destination=settings.destination,
        validation=settings.validation,
    )
    chosen = _types(config, group, types)
    requests: list[Any] = []
    meter = BudgetMeter(budget or RunBudget.resolve(config.name), threading.Event(), config.name)

    def on_request(record: RequestRecord) -> None:
        requests.append(record)
        bind_request_id(record.request_id)  # the retry/give-up lines that follow carry it
        meter.on_request(record)

    with (
        open_client(config, on_request) as client,
        Progress(progress, "backfill windows" if since else "windows") as bar,
        pause_on_signals(meter.stop) as stop,
    ):
        ctx = SyncContext(config, settings, client, read_capabilities(client), stop, bar)
        try:
            if since is not None:
                report = backfill(ctx, chosen, since, until, requests=requests)
            else:
                report = sync_incremental(ctx, chosen, force=force, requests=requests)
        finally:
            bind_request_id(None)
        token_refreshes = client.counters.token_refreshes
    if meter.reason:
        report.notices.append(meter.reason)
    report.metrics = run_metrics_rows(
        report.run,
        report.outcomes,
        report.requests,
        report.quarantined,
        token_refreshes=token_refreshes,
        warehouse_seconds=report.warehouse_seconds,
        stopped_by_budget=meter.exhausted,
    )
    write_run_metrics(settings, report.metrics)
    bind_run_id(None)
    return report


def report_lines(report: SyncReport) -> tuple[list[str], list[str]]:
    """Lines for stdout (what happened) and stderr (what went wrong), without identifiers."""
    run = report.run
    seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
    out = [
        f"run {run.run_id} ({run.source_system}, {run.command}): {run.status}; "
        f"{len(report.requests):,} requests, {run.resources_landed:,} resources landed, "
        f"{run.resources_merged:,} new or changed, {run.resources_unchanged:,} unchanged, "
        f"{run.resources_quarantined:,} quarantined in {seconds:.1f} s",
    ]
    if report.windows_total:
        out.append(f"windows: {report.windows_done} of {report.windows_total}")
    err = []
    metrics = {row["resource_type"]: row for row in report.metrics}
    for outcome in sorted(report.outcomes.values(), key=lambda o: o.resource_type):
        cursor = f", cursor {outcome.cursor}" if outcome.cursor else ""
        repages = f", {outcome.repages} window(s) re-paged" if outcome.repages else ""
        out.append(
            f"  {outcome.resource_type:<22}{outcome.status:<10}{outcome.pages:>6} pages"
            f"{outcome.resources:>9,} resources{repages}{cursor}"
        )
        if outcome.resource_type in metrics and outcome.status != "skipped":
            out.append(f"  {'':<22}{describe_row(metrics[outcome.resource_type])}")
        if outcome.error:
            err.append(f"{outcome.resource_type}: {outcome.error}")
    err.extend(report.notices)
    if any(o.status == "paused" for o in report.outcomes.values()):
        err.append("paused: run the same command again to resume after the last checkpoint")
    return out, err
