"""Read a Bulk Data ``error`` file (NDJSON of OperationOutcomes) into ``raw_fhir.bulk_errors``.

Servers list in error files what they could not export (a resource that failed to serialise,
a type the client may not read). fhir-elt never drops them: each line's issues become rows
(severity, code, coded details, FHIRPath expression) and the run reports them and exits 3.
``diagnostics`` and ``details.text`` are free text that can quote patient data: they are not
kept, and an expression that is more than a plain path (``Patient.name.where(family='x')``) is
stored as ``(withheld)``. The file's lines themselves land in ``_bulk_errors`` landing pages,
where the landing zone's access rules apply.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import dlt
import orjson
import pyarrow as pa
from dlt.extract.resource import DltResource

from loaders.warehouse.operational import BULK_ERRORS, BULK_ERRORS_SCHEMA

ERROR_PAGES = "_bulk_errors"
ERROR_KEY = ("source_system", "job_id", "file_key", "line_number", "issue_index")
_SEVERITIES = frozenset({"fatal", "error", "warning", "information"})
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_.:]{0,63}")
_PLAIN_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*|\[\d{1,6}\])*")
_MAX_EXPRESSIONS_CHARS = 500
WITHHELD = "(withheld)"


@dataclass(frozen=True, slots=True)
class IssueRow:
    """What is kept of one issue: codes and paths, never text."""

    severity: str
    code: str
    details_codes: str | None
    expression: str | None


@dataclass(slots=True)
class BulkErrorRecord:
    """One row of ``bulk_errors``; its fields are the table's columns, in order."""

    run_id: str
    source_system: str
    export_key: str
    job_id: str
    file_key: str
    file_label: str
    line_number: int
    issue_index: int
    severity: str
    code: str
    details_codes: str | None
    expression: str | None
    recorded_at: datetime


def _code(value: Any) -> str | None:
    return value if isinstance(value, str) and _CODE.fullmatch(value) else None


def _paths(issue: dict[str, Any]) -> str | None:
    raw = issue.get("expression") or issue.get("location") or []
    if not isinstance(raw, list) or not raw:
        return None
    kept = [
        value if isinstance(value, str) and _PLAIN_PATH.fullmatch(value) else WITHHELD
        for value in raw
    ]
    return ", ".join(dict.fromkeys(kept))[:_MAX_EXPRESSIONS_CHARS]


def _details(issue: dict[str, Any]) -> str | None:
    details = issue.get("details")
    codings = details.get("coding") if isinstance(details, dict) else None
    codes = [
        code
        for coding in (codings if isinstance(codings, list) else [])
        if isinstance(coding, dict) and (code := _code(coding.get("code"))) is not None
    ]
    return ", ".join(dict.fromkeys(codes)) or None


def parse_error_line(raw: bytes) -> list[IssueRow]:
    """The issues of one line; a line that is not an OperationOutcome is one ``invalid`` issue."""
    try:
        outcome = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [IssueRow("error", "invalid", "unreadable-line", None)]
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return [IssueRow("error", "invalid", "not-an-operation-outcome", None)]
    issues = outcome.get("issue")
    if not isinstance(issues, list) or not issues:
        return [IssueRow("error", "invalid", "no-issue", None)]
    rows = []
    for issue in issues:
        if not isinstance(issue, dict):
            rows.append(IssueRow("error", "invalid", "malformed-issue", None))
            continue
        severity = issue.get("severity")
        rows.append(
            IssueRow(
                severity=severity if severity in _SEVERITIES else "unknown",
                code=_code(issue.get("code")) or "unknown",
                details_codes=_details(issue),
                expression=_paths(issue),
            )
        )
    return rows


def error_records(
    lines: Iterable[tuple[int, bytes]],
    *,
    run_id: str,
    source_system: str,
    export_key: str,
    job_id: str,
    file_key: str,
    file_label: str,
    at: datetime,
) -> Iterator[BulkErrorRecord]:
    """Rows for the issues of ``(line number, line)`` pairs of one error file."""
    for line_number, raw in lines:
        for index, issue in enumerate(parse_error_line(raw)):
            yield BulkErrorRecord(
                run_id=run_id,
                source_system=source_system,
                export_key=export_key,
                job_id=job_id,
                file_key=file_key,
                file_label=file_label,
                line_number=line_number,
                issue_index=index,
                severity=issue.severity,
                code=issue.code,
                details_codes=issue.details_codes,
                expression=issue.expression,
                recorded_at=at,
            )


def bulk_errors_table(records: Sequence[BulkErrorRecord]) -> pa.Table:
    """The rows for ``bulk_errors`` (possibly none) as an arrow table."""
    return pa.Table.from_pylist([asdict(record) for record in records], BULK_ERRORS_SCHEMA)


def bulk_errors_resource(table: pa.Table) -> DltResource:
    """A dlt resource merging rows into ``bulk_errors`` (a file read twice adds nothing)."""
    return dlt.resource([table], name=BULK_ERRORS, write_disposition="merge", primary_key=ERROR_KEY)


def summarise_errors(records: Sequence[BulkErrorRecord]) -> list[str]:
    """Lines for an operator: issues per severity and code, the most frequent first."""
    if not records:
        return []
    files = len({record.file_key for record in records})
    by_code = Counter(f"{record.severity} {record.code}" for record in records)
    codes = ", ".join(f"{code} ({count:,})" for code, count in by_code.most_common(8))
    return [
        f"{len(records):,} issue(s) in {files} error file(s) from the server: {codes}; "
        "listed in raw_fhir.bulk_errors"
    ]
