"""NDJSON files of a Bulk Data export: output (per type, or per block of patients), deleted
and error files, each held as one ``bytes`` object with its line count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from tests.fhir_server.bulk_params import ExportParams
from tests.fhir_server.bulk_select import Selection, patient_of
from tests.fhir_server.documents import operation_outcome
from tests.fhir_server.fhirtime import format_instant
from tests.fhir_server.search import subset
from tests.fhir_server.store import Entry, Tombstone

OUTPUT, DELETED, ERROR = "output", "deleted", "error"


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One NDJSON file of an export.

    Attributes:
        name: File name in its URL (``Observation-1.ndjson``).
        kind: ``output``, ``deleted`` or ``error`` (the manifest array it is listed in).
        type: ``type`` in the manifest (``Patient`` for every ``organizeOutputBy`` file).
        body: The file's bytes: one JSON document per line, each line ending in ``\\n``.
        count: Number of lines.
    """

    name: str
    kind: str
    type: str
    body: bytes
    count: int

    def first_lines(self, n: int) -> bytes:
        """The first ``n`` lines (``b""`` for 0)."""
        end = 0
        for _ in range(max(0, min(n, self.count))):
            end = self.body.index(b"\n", end) + 1
        return self.body[:end]


def build_files(
    selection: Selection,
    params: ExportParams,
    *,
    per_file: int,
    error_outcomes: int,
) -> list[ExportFile]:
    """Every file of an export, in manifest order: outputs, deleted, errors."""
    per_file = max(1, per_file)
    files: list[ExportFile] = []
    entries = selection.entries
    if params.organize_by_patient:
        blocks, entries = _patient_blocks(selection)
        files.extend(_pack_blocks(blocks, params, per_file))
    by_type: dict[str, list[Entry]] = {}
    for entry in entries:
        by_type.setdefault(entry.key[0], []).append(entry)
    for rtype in sorted(by_type):
        lines = (_resource_line(e, params) for e in by_type[rtype])
        files.extend(_split(OUTPUT, rtype, rtype, lines, len(by_type[rtype]), per_file))
    tombstones = selection.tombstones
    files.extend(
        _split(
            DELETED,
            "Bundle",
            "deleted",
            (_deleted_line(t) for t in tombstones),
            len(tombstones),
            per_file,
        )
    )
    files.extend(
        _split(
            ERROR,
            "OperationOutcome",
            "error",
            (_error_line(i, error_outcomes) for i in range(1, error_outcomes + 1)),
            error_outcomes,
            per_file,
        )
    )
    return files


def _resource_line(entry: Entry, params: ExportParams) -> bytes:
    elements = params.elements_for(entry.key[0])
    resource = entry.resource if elements is None else subset(entry.resource, elements)
    return orjson.dumps(resource)


def _deleted_line(tombstone: Tombstone) -> bytes:
    rtype, rid = tombstone.key
    return orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "meta": {"lastUpdated": format_instant(tombstone.deleted_at)},
            "entry": [{"request": {"method": "DELETE", "url": f"{rtype}/{rid}"}}],
        }
    )


def _error_line(index: int, total: int) -> bytes:
    document = operation_outcome("processing", f"simulated export error {index} of {total}")
    document["id"] = f"export-error-{index}"
    return orjson.dumps(document)


def _split(
    kind: str, manifest_type: str, stem: str, lines: Iterable[bytes], total: int, per_file: int
) -> Iterator[ExportFile]:
    """Cut ``lines`` into files of at most ``per_file`` lines."""
    chunk: list[bytes] = []
    number = 0
    for line in lines:
        chunk.append(line)
        if len(chunk) == per_file:
            number += 1
            yield _file(kind, manifest_type, f"{stem}-{number}.ndjson", chunk)
            chunk = []
    if chunk:
        yield _file(kind, manifest_type, f"{stem}-{number + 1}.ndjson", chunk)


def _file(kind: str, manifest_type: str, name: str, lines: list[bytes]) -> ExportFile:
    lines.append(b"")
    return ExportFile(name, kind, manifest_type, b"\n".join(lines), len(lines) - 1)


def _patient_blocks(selection: Selection) -> tuple[list[list[Entry]], list[Entry]]:
    """Group the selection by patient; every block starts with its Patient (a header even
    when ``_type`` or ``_since`` left it out). Returns the blocks (by patient id) and the
    entries outside every patient compartment."""
    by_patient: dict[str, list[Entry]] = {}
    rest: list[Entry] = []
    for entry in selection.entries:
        pid = patient_of(entry)
        if pid is None:
            rest.append(entry)
        elif entry.key[0] != "Patient":
            by_patient.setdefault(pid, []).append(entry)
        else:
            by_patient.setdefault(pid, [])
    blocks = []
    for pid in sorted(by_patient):
        header = selection.patients.get(pid)
        blocks.append(([header] if header is not None else []) + by_patient[pid])
    return blocks, rest


def _pack_blocks(
    blocks: list[list[Entry]], params: ExportParams, per_file: int
) -> Iterator[ExportFile]:
    """Fill files with whole patient blocks; a file is closed once it reaches ``per_file``."""
    lines: list[bytes] = []
    number = 0
    for block in blocks:
        lines.extend(_resource_line(e, params) for e in block)
        if len(lines) >= per_file:
            number += 1
            yield _file(OUTPUT, "Patient", f"patients-{number}.ndjson", lines)
            lines = []
    if lines:
        yield _file(OUTPUT, "Patient", f"patients-{number + 1}.ndjson", lines)
