"""The Bulk Data commands behind the CLI: ``load bulk`` and ``export cancel``, and their report.

Exit codes of ``load bulk``: 0 the export is merged in full; 3 merged, with resources
quarantined or issues listed in the server's error files; 4 the job is still running on the
server (or a stop signal paused the run): it is checkpointed, run the same command again later
(a scheduler simply runs it on its next tick); 1 an error stopped the run (a failed job is
dropped, so the next run starts a new export).
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from loaders.bulk.checkpoint import BulkState, job_dropped
from loaders.bulk.config import BulkSourceConfig, ExportLevel, load_bulk_source_config, parse_types
from loaders.bulk.connect import open_bulk_client
from loaders.bulk.errors import summarise_errors
from loaders.bulk.export import BulkContext, BulkReport, downloads_folder, run_export
from loaders.exceptions import ExtractError
from loaders.landing import LandingZone
from loaders.rest.pause import pause_on_signals
from loaders.rest.progress import Progress
from loaders.runs import merge, new_run_id, record_run, safe_error
from loaders.settings import LoadSettings
from loaders.warehouse.operational import RunRecord, request_log_table
from loaders.warehouse.pipeline import make_pipeline, read_raw_state

logger = logging.getLogger(__name__)


def _source_settings(settings: LoadSettings, config: BulkSourceConfig) -> LoadSettings:
    return replace(settings, source_system=config.name)


def _with_group(config: BulkSourceConfig, group: str | None) -> BulkSourceConfig:
    if group is None:
        return config
    return replace(config, level=ExportLevel.GROUP, group_id=group)


def run_bulk(
    source: str,
    settings: LoadSettings,
    *,
    group: str | None = None,
    types: str | None = None,
    progress: bool | None = None,
    config: BulkSourceConfig | None = None,
) -> BulkReport:
    """Run (or resume) the source's Bulk Data export.

    Args:
        source: The source's name in the dlt config (``sources.fhir_bulk.<source>``); it is
            also the ``source_system`` of every row.
        settings: Warehouse and landing zone (its source_system is replaced by ``source``).
        group: Export this Group (``Group/<id>/$export``) instead of the configured level.
        types: Only these types (comma-separated), instead of the configured ones.
        progress: Show a progress bar over files (default: when stderr is a terminal).
        config: The source configuration (read from dlt config when None).
    """
    config = _with_group(config or load_bulk_source_config(source), group)
    chosen = config.types
    if types:
        chosen = parse_types([t.strip() for t in types.split(",") if t.strip()], "--types")
    requests: list[Any] = []
    with (
        open_bulk_client(config, requests.append) as client,
        Progress(progress, "files") as bar,
        pause_on_signals(threading.Event()) as stop,
    ):
        ctx = BulkContext(config, _source_settings(settings, config), client, chosen, stop, bar)
        return run_export(ctx, requests)


@dataclass(slots=True)
class CancelReport:
    """What ``export cancel`` did."""

    run: RunRecord
    cancelled: list[str] = field(default_factory=list)
    answers: dict[str, int | None] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when the run was recorded as succeeded (nothing to cancel is a success too)."""
        return 0 if self.run.status == "succeeded" else 1


def cancel_export(
    source: str,
    settings: LoadSettings,
    *,
    group: str | None = None,
    config: BulkSourceConfig | None = None,
) -> CancelReport:
    """Cancel the source's export jobs in flight (``DELETE`` their status URLs), forget them.

    Args:
        source: The source's name.
        settings: Warehouse and landing zone.
        group: Only the jobs exporting this Group.
        config: The source configuration (read from dlt config when None).

    A job the server no longer knows (404/410) is forgotten too. ``since`` does not move, so
    the next ``load bulk`` exports again from the last export merged in full.
    """
    config = config or load_bulk_source_config(source)
    settings = _source_settings(settings, config)
    started_at = datetime.now(UTC)
    run = RunRecord(
        new_run_id(started_at),
        config.name,
        "export cancel",
        started_at,
        credential_client_id=config.auth.credential_client_id,
    )
    zone = LandingZone(settings.landing_root, config.name, run.run_id)
    pipeline = make_pipeline(settings)
    report = CancelReport(run)
    requests: list[Any] = []
    try:
        state = BulkState.from_state(read_raw_state(pipeline))
        jobs = {
            key: job
            for key, job in state.jobs.items()
            if group is None or key.startswith(f"group/{group}|")
        }
        with open_bulk_client(config, requests.append) as client:
            for key, job in jobs.items():
                try:
                    answer = client.send(
                        "DELETE", job.status_url, answer_statuses=frozenset({404, 410})
                    )
                    report.answers[key] = answer.status
                except ExtractError as error:
                    report.answers[key] = None
                    raise ExtractError(
                        f"export {key}: the server did not accept the cancellation: {error}"
                    ) from None
                merge(pipeline, settings, lambda _filter, key=key: iter([job_dropped(key)]))
                shutil.rmtree(downloads_folder(settings, config.name, job), ignore_errors=True)
                report.cancelled.append(key)
        run.status = "succeeded"
    except BaseException as error:
        run.status, run.error = "failed", safe_error(error)
        raise
    finally:
        run.finished_at = datetime.now(UTC)
        record_run(
            pipeline, zone, [], run, request_log_table(run.run_id, run.source_system, requests)
        )
    return report


def report_lines(report: BulkReport) -> tuple[list[str], list[str]]:
    """Lines for stdout (what happened) and stderr (what went wrong), without identifiers."""
    run = report.run
    seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
    out = [
        f"run {run.run_id} ({run.source_system}, {run.command}, export {report.export_key}): "
        f"{report.status}; {len(report.requests):,} requests, {run.resources_landed:,} "
        f"resources landed, {run.resources_merged:,} new or changed, "
        f"{run.resources_unchanged:,} unchanged, {run.resources_quarantined:,} quarantined "
        f"in {seconds:.1f} s",
    ]
    job = "kicked off in this run" if report.kicked_off else "resumed"
    out.append(f"job {job}; _since {report.since or 'none (everything)'}; {report.polls} polls")
    if report.transaction_time:
        out.append(
            f"manifest: transactionTime {report.transaction_time}, {report.files_total} files "
            f"({report.manifest_pages} page(s)), {report.files_done_before} merged by earlier "
            f"runs, {report.files_done} in this one; {report.deletions:,} deletions marked"
        )
    for resource_type, count in sorted(run.counts_by_type.items()):
        merged = run.merged_by_type.get(resource_type, 0)
        out.append(f"  {resource_type:<22}{count:>10,} landed{merged:>10,} merged")
    if report.status == "complete":
        deleted = "deleted on the server" if report.job_deleted else "left on the server"
        out.append(f"export merged in full; next _since {report.transaction_time}; job {deleted}")
    err = list(summarise_errors(report.errors))
    if report.status == "pending":
        progress = f" ({report.progress})" if report.progress else ""
        out.append(
            f"the server is still working on the export{progress}; the job is checkpointed: "
            "run the same command again later to resume it"
        )
    if report.status == "paused":
        err.append("paused: run the same command again to resume the same job")
    if run.resources_quarantined:
        err.append(
            f"{run.resources_quarantined:,} line(s) quarantined: listed in raw_fhir.quarantine"
        )
    if run.error:
        err.append(run.error)
    return out, err


def cancel_lines(report: CancelReport) -> tuple[list[str], list[str]]:
    """Lines for ``export cancel``."""
    if not report.cancelled:
        return ["no export job in flight; nothing to cancel"], []
    out = []
    for key in report.cancelled:
        status = report.answers.get(key)
        gone = " (the server had already forgotten it)" if status in (404, 410) else ""
        out.append(f"cancelled export {key}{gone}")
    return out, []
