"""``fhir-elt quarantine retry``: parse quarantined resources again, merge what now loads.

After a fix in code or configuration, the original bytes of each selected (open) quarantined
resource are read from its verified ``_quarantine`` landing page and parsed again. What parses
now is landed in a new page and merged like any load (:class:`loaders.ingest.PageIngest`, the
version filter, :func:`loaders.runs.merge`), in one run per source system recorded in
``load_runs`` (command ``quarantine retry``); its ``fetched_at`` is when it was first read, so
a resource without ``meta.lastUpdated`` orders as when it arrived. What still fails stays
quarantined. With validation on (``sample:N`` or ``full``), every resource that parses is
also validated against ``fhir.resources.R4B`` (all of them, not a sample: a sample could let a
resource quarantined as invalid through by chance), and an invalid one stays quarantined.
Nothing in ``quarantine`` is changed or deleted: each outcome is a row of
``quarantine_retries``, and a resolved resource's status becomes ``resolved``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache, partial

import pyarrow as pa

from loaders.exceptions import LandingError, WarehouseError
from loaders.ingest import PageIngest
from loaders.landing import LandingZone
from loaders.quarantine.payload import PageCache, parse_again
from loaders.quarantine.records import QuarantineEntry
from loaders.quarantine.retries import (
    BYTES_UNAVAILABLE,
    RESOLVED,
    STILL_REFUSED,
    RetryRecord,
    write_retries,
)
from loaders.resources import ParsedResource
from loaders.runs import merge, new_run_id, record_run, safe_error, write_manifest
from loaders.settings import LoadSettings
from loaders.validation import FULL, Validator
from loaders.warehouse.operational import RunRecord
from loaders.warehouse.pipeline import make_pipeline
from loaders.warehouse.version_filter import DuckDBVersionFilter

logger = logging.getLogger(__name__)

COMMAND = "quarantine retry"


@dataclass(slots=True)
class RetryReport:
    """What a retry did: its runs (one per source system) and one record per entry."""

    runs: list[RunRecord] = field(default_factory=list)
    records: list[RetryRecord] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every retried resource is resolved, 3 when some stay quarantined."""
        return 3 if any(record.outcome != RESOLVED for record in self.records) else 0


def retry(settings: LoadSettings, entries: Sequence[QuarantineEntry]) -> RetryReport:
    """Retry ``entries`` (resolved ones should be left out by the caller).

    Raises:
        LandingError: A page could not be landed (the run is recorded as failed).
        WarehouseError: The merge, or the record of the outcomes, failed.
    """
    report = RetryReport()
    by_source: dict[str, list[QuarantineEntry]] = defaultdict(list)
    for entry in entries:
        by_source[entry.source_system].append(entry)
    for source_system, group in sorted(by_source.items()):
        _retry_source(replace(settings, source_system=source_system), group, report)
    return report


@dataclass(slots=True)
class _Accepted:
    entry: QuarantineEntry
    resources: list[ParsedResource]
    record: RetryRecord


def _read(
    pages: PageCache, entry: QuarantineEntry, base: RetryRecord, validator: Validator | None
) -> _Accepted | RetryRecord:
    try:
        parsed = parse_again(pages.original(entry))
    except LandingError as error:
        return replace(base, outcome=BYTES_UNAVAILABLE, retry_reason=str(error))
    invalid = validator.invalid(parsed) if validator and isinstance(parsed, list) else []
    if invalid:
        finding = invalid[0].finding
        return replace(
            base,
            outcome=STILL_REFUSED,
            retry_reason=finding.reason,
            retry_json_path=finding.json_path,
        )
    if isinstance(parsed, list):
        return _Accepted(entry, parsed, replace(base, outcome=RESOLVED, resources=len(parsed)))
    return replace(
        base,
        outcome=STILL_REFUSED,
        retry_reason=str(parsed.reason),
        retry_json_path=parsed.json_path,
    )


def _retry_source(
    settings: LoadSettings, entries: Sequence[QuarantineEntry], report: RetryReport
) -> None:
    started_at = datetime.now(UTC)
    run = RunRecord(new_run_id(started_at), settings.source_system, COMMAND, started_at)
    report.runs.append(run)
    zone = LandingZone(settings.landing_root, settings.source_system, run.run_id)
    pipeline = cache(partial(make_pipeline, settings))
    pages = PageCache(settings.landing_root)
    accepted: list[_Accepted] = []
    records: list[RetryRecord] = []
    # Retries are few: validated in this process, no pool to start.
    validator = Validator(FULL, workers=1) if settings.validation.enabled else None
    for entry in entries:
        base = RetryRecord(
            quarantine_id=entry.id,
            run_id=entry.run_id,
            source_system=entry.source_system,
            source_file=entry.source_file,
            line_number=entry.line_number,
            json_path=entry.json_path,
            retry_run_id=run.run_id,
            retried_at=started_at,
            outcome=STILL_REFUSED,
        )
        outcome = _read(pages, entry, base, validator)
        if isinstance(outcome, _Accepted):
            accepted.append(outcome)
            records.append(outcome.record)
        else:
            records.append(outcome)
    run.resources_read = sum(len(item.resources) for item in accepted)
    try:
        if accepted:
            merge(pipeline, settings, partial(_batches, zone, run, settings, accepted))
        run.status = "succeeded"
    except BaseException as error:
        run.status = "failed"
        run.error = safe_error(error)
        for record in records:  # nothing of this run is known to be merged
            if record.outcome == RESOLVED:
                record.outcome, record.retry_reason = STILL_REFUSED, "the retry run failed"
        raise
    finally:
        run.finished_at = datetime.now(UTC)
        _, manifest_error = write_manifest(zone, run)
        record_run(pipeline, zone, [], run, settings=settings)
        report.records.extend(records)
        try:
            write_retries(pipeline, settings, records)
        except Exception as failure:
            logger.error(
                "run %s: could not record the retries: %s", run.run_id, safe_error(failure)
            )
            if run.status != "failed":
                raise WarehouseError(
                    f"run {run.run_id}: the retry outcomes could not be recorded in "
                    f"raw_fhir.quarantine_retries: {safe_error(failure)}"
                ) from failure
    if manifest_error is not None:
        # Raised only here, once nothing else is propagating: an earlier error takes precedence.
        raise manifest_error
    logger.info(
        "run %s: %d retried, %d resolved",
        run.run_id,
        len(records),
        sum(1 for record in records if record.outcome == RESOLVED),
    )


def _batches(
    zone: LandingZone,
    run: RunRecord,
    settings: LoadSettings,
    accepted: Sequence[_Accepted],
    version_filter: DuckDBVersionFilter,
) -> Iterator[tuple[str, pa.Table]]:
    """Land what parses now, one page per type and first-read time, and yield its rows."""
    ingest = PageIngest(zone, version_filter, run, settings.page_size)
    groups: dict[tuple[str, datetime], list[tuple[_Accepted, ParsedResource]]] = defaultdict(list)
    for item in accepted:
        for resource in item.resources:
            groups[(resource.resource_type, item.entry.quarantined_at)].append((item, resource))
    for (resource_type, fetched_at), members in groups.items():
        for start in range(0, len(members), settings.page_size):
            chunk = members[start : start + settings.page_size]
            landed = ingest.land(
                resource_type,
                [resource for _, resource in chunk],
                [f"{run.run_id}/quarantine-{item.entry.id}" for item, _ in chunk],
                fetched_at,
            )
            page = zone.pages[-1].landing_file
            for item, _ in chunk:
                item.record.landing_file = page
            if landed is not None:
                yield landed
