"""Land a page of accepted resources, then turn it into the batch the merge needs.

Every loader (files, REST, Bulk) funnels its resources through :class:`PageIngest`, so the
promise holds in one place: a page is on disk in the landing zone before its rows are offered
to the merge, unchanged or older rows are filtered out before dlt sees them, and refused
resources land in quarantine pages with a ``quarantine`` row naming reason and JSON path.
With a validator (validation mode ``sample:N`` or ``full``), a page's resources that are not
valid FHIR R4B are taken out before the page is landed and quarantined like any refused
resource (original bytes kept), so the landed page holds only what is merged and replays the
same; the rest of the page is landed and merged without waiting for anything else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

import pyarrow as pa

from loaders.drift import run_ledger
from loaders.drift.detector import Shape
from loaders.fhir import CORE_RESOURCE_TYPES, table_name_for
from loaders.landing import LandingZone
from loaders.landing.zone import QUARANTINE as QUARANTINE_PAGES
from loaders.resources import ParsedResource, Rejection
from loaders.validation import Validator
from loaders.validation.refusals import Origin, invalid_resource
from loaders.warehouse.operational import QuarantineRecord, RunRecord
from loaders.warehouse.raw_columns import parsed_resources, raw_batch_from_columns
from loaders.warehouse.raw_tables import build_raw_batch, empty_raw_batch
from loaders.warehouse.version_filter import DuckDBVersionFilter

logger = logging.getLogger(__name__)


class PageIngest:
    """Lands pages, filters them against the warehouse, and counts what happened in the run.

    Args:
        zone: The run's landing zone.
        version_filter: Stored versions to compare incoming rows with.
        run: The run record whose counters are updated.
        quarantine_page_size: Refused lines per quarantine landing page.
        validator: Validates each page before it is landed (None: validation off).
    """

    def __init__(
        self,
        zone: LandingZone,
        version_filter: DuckDBVersionFilter,
        run: RunRecord,
        quarantine_page_size: int,
        *,
        validator: Validator | None = None,
    ) -> None:
        self.zone = zone
        self.version_filter = version_filter
        self.run = run
        self.quarantine_page_size = quarantine_page_size
        self.validator = validator
        # Schema drift is checked per landed page, before its rows go to the merge.
        self.drift = run_ledger(run.run_id, zone.source_system)
        self.quarantined: list[QuarantineRecord] = []
        self._quarantine_lines: list[bytes] = []
        self._quarantine_pending: list[QuarantineRecord] = []

    def land(
        self,
        resource_type: str,
        resources: Sequence[ParsedResource],
        request_ids: Sequence[str],
        fetched_at: datetime,
        origins: Sequence[Origin] | None = None,
    ) -> tuple[str, pa.Table] | None:
        """Land one page of one resource type; return ``(raw table, changed rows)`` or None.

        Args:
            resource_type: The type every resource of the page has.
            resources: The accepted resources, in the order they arrived.
            request_ids: One per resource: the request (or file) it came from.
            fetched_at: When the page was fetched (or the file read).
            origins: One per resource: its file and line, for the quarantine row of an invalid
                one; without them it is the request id and its position in the page.
        """
        if resources and self.validator is not None:
            resources, request_ids = self._refuse_invalid(
                resources, request_ids, fetched_at, origins
            )
        if not resources:
            return None
        page = self.zone.write_page(
            resource_type,
            [resource.text for resource in resources],
            fetched_at,
            request_ids=request_ids,
        )
        self.drift.check_page(resource_type, resources, page.landing_file, fetched_at)
        table = table_name_for(resource_type)
        batch = build_raw_batch(
            resources,
            source_system=self.zone.source_system,
            fetched_at=fetched_at,
            request_ids=request_ids,
            landing_file=page.landing_file,
        )
        return self._filter(resource_type, table, batch, len(resources))

    def land_columns(
        self,
        resource_type: str,
        rows: pa.Table,
        request_ids: Sequence[str],
        fetched_at: datetime,
        drift: Iterable[frozenset[Shape]],
        origins: Callable[[], Sequence[Origin]],
        landing_bytes: bytes,
    ) -> tuple[str, pa.Table] | None:
        """:meth:`land` for a page parsed into columns (a file load's worker processes).

        Lands the same bytes and merges the same rows as :meth:`land` would for the same
        resources; the schema drift walk was done where the resources were decoded.

        Args:
            resource_type: The type of every row.
            rows: The resources (:data:`loaders.warehouse.raw_columns.PARSED_SCHEMA`).
            request_ids: One per row: the request (or file) it came from.
            fetched_at: When the page was fetched (or the file read).
            drift: The drifted shapes of each drifted row.
            origins: Each row's file and line (called only when validation needs them).
            landing_bytes: The page as stored: ``compress_page`` of the texts, each followed
                by ``\\n``, at the zone's ``compresslevel``.
        """
        if self.validator is not None:
            resources = list(parsed_resources(resource_type, rows))
            return self.land(resource_type, resources, request_ids, fetched_at, origins())
        if rows.num_rows == 0:
            return None
        page = self.zone.write_compressed_page(
            resource_type,
            landing_bytes,
            rows.num_rows,
            fetched_at,
            request_ids=request_ids,
        )
        self.drift.check_shapes(resource_type, drift, rows.num_rows, page.landing_file, fetched_at)
        batch = raw_batch_from_columns(
            resource_type,
            rows,
            source_system=self.zone.source_system,
            fetched_at=fetched_at,
            request_ids=request_ids,
            landing_file=page.landing_file,
        )
        return self._filter(resource_type, table_name_for(resource_type), batch, rows.num_rows)

    def _filter(
        self, resource_type: str, table: str, batch: pa.Table, landed: int
    ) -> tuple[str, pa.Table] | None:
        """Keep the landed page's rows that change the warehouse; count them in the run."""
        changed = self.version_filter.keep_newer(table, batch)
        run = self.run
        run.landing_pages += 1
        run.resources_landed += landed
        run.resources_merged += changed.num_rows
        run.resources_unchanged += landed - changed.num_rows
        run.counts_by_type[resource_type] = run.counts_by_type.get(resource_type, 0) + landed
        run.merged_by_type[resource_type] = (
            run.merged_by_type.get(resource_type, 0) + changed.num_rows
        )
        return (table, changed) if changed.num_rows else None

    def _refuse_invalid(
        self,
        resources: Sequence[ParsedResource],
        request_ids: Sequence[str],
        fetched_at: datetime,
        origins: Sequence[Origin] | None,
    ) -> tuple[Sequence[ParsedResource], Sequence[str]]:
        """Quarantine the page's invalid resources; return the others and their request ids."""
        assert self.validator is not None
        invalid = self.validator.invalid(resources)
        if not invalid:
            return resources, request_ids
        for item in invalid:
            resource = resources[item.position]
            origin = (
                origins[item.position]
                if origins
                else Origin(request_ids[item.position], item.position + 1)
            )
            rejection = invalid_resource(resource, item.finding, origin)
            self.quarantine(rejection, origin.source, origin.line, resource.text, fetched_at)
        first = invalid[0].finding
        logger.info(
            "%s page: %d of %d resources not valid FHIR R4B, quarantined (first: %s, %s)",
            resources[0].resource_type,
            len(invalid),
            len(resources),
            first.json_path,
            first.reason,
        )
        refused = {item.position for item in invalid}
        kept = [position for position in range(len(resources)) if position not in refused]
        return [resources[i] for i in kept], [request_ids[i] for i in kept]

    def quarantine(
        self, rejection: Rejection, source: str, line: int, raw: bytes, at: datetime
    ) -> None:
        """Refuse one resource: its original bytes go to a quarantine page, its reason to a row.

        Args:
            rejection: Why, where (JSON path), and the type and id when they could be read.
            source: The file, or the request's path template, it came from.
            line: The line (file) or the entry index (page) within ``source``.
            raw: The original bytes; empty when there are none to keep.
            at: When it was refused.
        """
        record = QuarantineRecord(
            run_id=self.run.run_id,
            source_system=self.zone.source_system,
            source_file=source,
            line_number=line,
            resource_type=rejection.resource_type,
            resource_id=rejection.resource_id,
            reason=rejection.reason,
            json_path=rejection.json_path,
            landing_file=None,
            quarantined_at=at,
        )
        self.run.resources_quarantined += 1
        if raw:
            self._quarantine_lines.append(raw.replace(b"\n", b" "))
            self._quarantine_pending.append(record)
        else:
            self.quarantined.append(record)
        if len(self._quarantine_lines) >= self.quarantine_page_size:
            self.flush_quarantine(at)

    def flush_quarantine(self, at: datetime) -> None:
        """Write the pending quarantine lines as one landing page."""
        if not self._quarantine_lines:
            return
        page = self.zone.write_page(QUARANTINE_PAGES, self._quarantine_lines, at)
        for number, record in enumerate(self._quarantine_pending, start=1):
            record.landing_file = page.landing_file
            record.landing_line = number
        self.quarantined.extend(self._quarantine_pending)
        self._quarantine_lines = []
        self._quarantine_pending = []

    def empty_core_tables(self) -> Iterator[tuple[str, pa.Table]]:
        """Empty batches for core tables that neither the warehouse nor this run has yet.

        Sent so every core raw table exists after the first run, and dbt sources over them
        never point at nothing.
        """
        for resource_type in CORE_RESOURCE_TYPES:
            table = table_name_for(resource_type)
            if resource_type not in self.run.counts_by_type and not self.version_filter.has_table(
                table
            ):
                yield table, empty_raw_batch()
