"""The CLI's entry point for ``fhir-elt reconcile``, and the lines it prints."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from loaders.exceptions import ConfigError
from loaders.reconcile.compare import DELTA, FAILING, OVER_BUDGET, REPAIRED, UNCHECKED
from loaders.reconcile.run import ReconcileContext, ReconcileOptions, ReconcileReport, reconcile
from loaders.rest.capabilities import read_capabilities
from loaders.rest.config import RestSourceConfig, load_rest_source_config
from loaders.rest.connect import open_client
from loaders.settings import LoadSettings


def _types(config: RestSourceConfig, types: str | None) -> tuple[str, ...]:
    if not types:
        return config.resource_types
    chosen = tuple(t.strip() for t in types.split(",") if t.strip())
    unknown = [t for t in chosen if t not in config.resource_types]
    if unknown:
        raise ConfigError(
            f"source {config.name!r} does not configure {', '.join(unknown)} "
            f"(configured: {', '.join(config.resource_types)})"
        )
    return chosen


def run_reconcile(
    source: str,
    settings: LoadSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    types: str | None = None,
    repair_budget: int = 20,
    sweep_deletes: bool = False,
    config: RestSourceConfig | None = None,
    window_resources: int = 1000,
) -> ReconcileReport:
    """Reconcile a REST source with the warehouse (see :mod:`loaders.reconcile.run`).

    Args:
        source: The source's name in the dlt config (``sources.fhir_rest.<source>``).
        settings: Warehouse and landing zone (its source_system is replaced by ``source``).
        since: Start of the range (exclusive); default: the beginning.
        until: End of the range (inclusive); default and upper limit: each type's cursor.
        types: Only these types (comma-separated); default every configured type.
        repair_budget: Windows repaired at most (0: only report).
        sweep_deletes: Compare ids in every window to find deletions hidden by equal counts.
        config: The source configuration (read from dlt config when None).
        window_resources: Differing windows are cut down to this many resources.

    Raises:
        ConfigError: A bad option or source configuration.
    """
    if repair_budget < 0:
        raise ConfigError(f"--repair-budget must be 0 or more, got {repair_budget}")
    if since is not None and until is not None and since >= until:
        raise ConfigError("--since must be before --until")
    if settings.on_snowflake:
        raise ConfigError(
            "reconcile reads the DuckDB warehouse; with destination snowflake it is not "
            "supported yet (run it against a DuckDB load of the source)"
        )
    config = config or load_rest_source_config(source)
    settings = replace(settings, source_system=config.name)
    chosen = _types(config, types)
    options = ReconcileOptions(since, until, repair_budget, sweep_deletes, window_resources)
    requests: list[Any] = []
    with open_client(config, requests.append) as client:
        ctx = ReconcileContext(config, settings, client, read_capabilities(client))
        return reconcile(ctx, chosen, options, requests=requests)


def report_lines(report: ReconcileReport) -> tuple[list[str], list[str]]:
    """Lines for stdout (per type and per window that differed) and stderr (what remains).

    Windows are named by their time range only; no identifier is ever printed.
    """
    run = report.run
    seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
    checks = report.checks
    out = [
        f"run {run.run_id} ({run.source_system}, reconcile): {run.status}; "
        f"{len(report.requests):,} requests, {len(checks)} windows checked, "
        f"{report.windows_repaired} repaired of a budget of {report.options.repair_budget}, "
        f"{sum(c.marked_deleted for c in checks)} marked deleted in {seconds:.1f} s",
    ]
    err: list[str] = []
    for resource_type in sorted({check.resource_type for check in checks}):
        mine = [check for check in checks if check.resource_type == resource_type]
        source = sum(check.source_count or 0 for check in mine)
        warehouse = sum(check.warehouse_count for check in mine)
        holes = sum(max(check.initial_delta or 0, 0) for check in mine)
        failing = sum(1 for check in mine if check.status in FAILING)
        out.append(
            f"  {resource_type:<22}{len(mine):>4} windows  source {source:>9,}  "
            f"warehouse {warehouse:>9,}  holes found {holes:>5,}  "
            f"marked deleted {sum(c.marked_deleted for c in mine):>4,}  "
            f"{'DELTA' if failing else 'ok'}"
        )
    for check in checks:
        if check.status == REPAIRED:
            out.append(
                f"    repaired {check.describe()}: delta {check.initial_delta or 0:+,} -> 0 "
                f"({check.resources_fetched:,} fetched, {check.marked_deleted:,} marked deleted)"
            )
        elif check.status == UNCHECKED:
            err.append(f"{check.describe()}: the server gave no count; not checked")
        elif check.status == OVER_BUDGET:
            err.append(f"{check.describe()}: delta {check.delta:+,} not repaired (over budget)")
        elif check.status == DELTA:
            why = f" ({check.error})" if check.error else ""
            err.append(
                f"{check.describe()}: delta {check.delta:+,} remains after repair "
                f"(source {check.source_count:,}, warehouse {check.warehouse_count:,}){why}"
            )
    for resource_type, reason in sorted(report.skipped.items()):
        err.append(f"{resource_type}: not reconciled: {reason}")
    over = sum(1 for check in checks if check.status == OVER_BUDGET)
    if over:
        err.append(
            f"repair budget exhausted: {over} window(s) with a delta were not repaired; run "
            "again (each run repairs the largest deltas first) or raise --repair-budget"
        )
    if report.failing:
        err.append(
            f"{len(report.failing)} window(s) still differ; see raw_fhir.reconciliation_checks "
            f"(run_id {run.run_id})"
        )
    return out, err
