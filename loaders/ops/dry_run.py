"""``--dry-run``: what a ``load rest`` or ``backfill`` would request, without requesting it.

The plan is built from the same pieces the sync uses (schedule, cursors and checkpoints from the
warehouse's dlt state, strategies, the server's CapabilityStatement), so it shows the first
request of every search the run would start. The only request made is ``GET [base]/metadata``,
sent without a token (servers serve it openly); if it fails, the plan says so and assumes
every search parameter is supported. Per-patient searches are shown once, with the number of
patients and no ids; backfill windows are shown as the range each type would cover (the run
cuts it by ``_summary=count``, which a dry run does not send).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from loaders.exceptions import ConfigError, ExtractError
from loaders.http import FhirHttpClient, Timeouts
from loaders.http.request_log import safe_query_description
from loaders.rest.capabilities import Capabilities, read_capabilities
from loaders.rest.config import RestSourceConfig, Strategy, load_rest_source_config
from loaders.rest.sync import STATE_ROOT, SyncContext, _check_strategy, _due, _window_tasks
from loaders.rest.tasks import PullTask
from loaders.rest.windows import Window, fhir_instant, incremental_window, parse_checkpoint
from loaders.settings import LoadSettings
from loaders.warehouse.pipeline import make_pipeline, read_raw_state


def _capabilities(config: RestSourceConfig) -> tuple[Capabilities, str]:
    try:
        with FhirHttpClient(
            config.base_url,
            None,
            timeouts=Timeouts(connect=config.connect_timeout, read=config.read_timeout),
        ) as client:
            return read_capabilities(client), "read from the server's CapabilityStatement"
    except (ExtractError, httpx.HTTPError) as error:
        name = type(error).__name__
        return Capabilities(), f"CapabilityStatement unavailable ({name}): assuming full support"


def _describe(task: PullTask, patients: int | None = None) -> str:
    query = safe_query_description(httpx.QueryParams(task.params))
    line = f"GET {task.path or task.resource_type}?{query}"
    if patients is not None:
        line += f"   (once per loaded patient: {patients:,} searches)"
    return line


def _type_lines(
    ctx: SyncContext, resource_type: str, strategy: Strategy, window: Window | None, label: str
) -> list[str]:
    tasks = _window_tasks(ctx, resource_type, strategy, window, label)
    if strategy is Strategy.PER_PATIENT:
        if not tasks:
            return ["no patients loaded yet: sync Patient first"]
        return [_describe(tasks[0], len(tasks))]
    return [_describe(task) for task in tasks]


def dry_run(
    source: str,
    settings: LoadSettings,
    *,
    group: str | None = None,
    types: str | None = None,
    force: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    config: RestSourceConfig | None = None,
) -> list[str]:
    """The plan of ``load rest`` (or ``backfill`` with ``since``), arguments as for ``run_rest``."""
    from loaders.rest.commands import _types

    config = config or load_rest_source_config(source)
    settings = replace(settings, source_system=config.name)
    chosen = _types(config, group, types)
    return plan_lines(config, settings, chosen, force=force, since=since, until=until)


def plan_lines(
    config: RestSourceConfig,
    settings: LoadSettings,
    resource_types: tuple[str, ...],
    *,
    force: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[str]:
    """The plan of a run as lines for stdout (no identifiers, no secrets)."""
    capabilities, origin = _capabilities(config)
    state: dict[str, Any] = {}
    if settings.duckdb_path.exists():  # a first run has no state; do not create the file
        state = read_raw_state(make_pipeline(settings)).get(STATE_ROOT, {})
    ctx = SyncContext(config, settings, None, capabilities, threading.Event())  # type: ignore[arg-type]
    now = capabilities.server_now
    command = "backfill" if since is not None else "load rest"
    lines = [
        f"dry run of {command} for source {config.name}: no data is requested, nothing written",
        f"server: {config.base_url}; capabilities {origin}; server now {fhir_instant(now)}",
    ]
    if since is not None:
        job = f"{fhir_instant(since)}..{fhir_instant(until) if until else 'now'}"
        job_state = state.get("backfills", {}).get(job, {})
        end = parse_checkpoint(job_state.get("until")) or until or now
        lines.append(
            f"backfill job {job}: windows of at most {config.backfill_window_resources:,} "
            "resources, cut by _summary=count when the run starts"
        )
    cursors = state.get("cursors", {})
    for resource_type in resource_types:
        strategy_name = config.type_config(resource_type).strategy.value
        try:
            strategy = _check_strategy(ctx, resource_type)
        except ConfigError as error:
            lines.append(f"  {resource_type:<20} would FAIL: {error}")
            continue
        if since is not None:
            done = parse_checkpoint(
                state.get("backfills", {}).get(job, {}).get("done", {}).get(resource_type)
            )
            start = done or since
            if start >= end:
                lines.append(f"  {resource_type:<20} backfill complete; nothing to request")
                continue
            window = Window(start, end)
            head = f"  {resource_type:<20} {strategy_name}, range {window.describe()}"
        else:
            if not force and not _due(ctx, state, resource_type, datetime.now(UTC)):
                lines.append(f"  {resource_type:<20} skipped: its schedule group is not due")
                continue
            cursor = parse_checkpoint(cursors.get(resource_type))
            if strategy is Strategy.CLINICAL_DATE:
                lookback = timedelta(days=config.type_config(resource_type).lookback_days)
                window = None if cursor is None else Window(cursor - lookback, now, open_end=True)
            else:
                window = incremental_window(cursor, timedelta(hours=config.overlap_hours), now)
            cursor_text = fhir_instant(cursor) if cursor else "none (first sync: everything)"
            head = f"  {resource_type:<20} {strategy_name}, cursor {cursor_text}"
        lines.append(head)
        lines.extend(
            f"      {line}" for line in _type_lines(ctx, resource_type, strategy, window, "plan")
        )
    return lines
