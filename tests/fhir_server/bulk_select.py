"""Which resources a Bulk Data export holds: levels, ``_type``, ``_since``, ``_typeFilter``,
``patient`` and token scopes, applied to a store snapshot taken at kick-off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.fhir_server.bulk_params import SYSTEM, ExportParams
from tests.fhir_server.search import patient_reference
from tests.fhir_server.store import Entry, Snapshot, Tombstone

TypeAllowed = Callable[[str], bool]


@dataclass
class Selection:
    """The content of one export, frozen at kick-off.

    Attributes:
        entries: Exported resources, in type-then-id order.
        tombstones: Deleted resources to report (only with ``_since``), in type-then-id order.
        patients: Snapshot Patient entries in scope by id (block headers of
            ``organizeOutputBy=Patient``; empty when the token may not read Patient).
    """

    entries: list[Entry]
    tombstones: list[Tombstone]
    patients: dict[str, Entry]


def patient_of(entry: Entry) -> str | None:
    """Id of the patient whose compartment holds ``entry`` (``None``: not patient data)."""
    if entry.key[0] == "Patient":
        return entry.key[1]
    ref = patient_reference(entry.resource)
    if ref is None or not ref.startswith("Patient/"):
        return None
    return ref[len("Patient/") :]


def select(
    snapshot: Snapshot,
    params: ExportParams,
    members: list[str] | None,
    type_allowed: TypeAllowed,
) -> Selection:
    """Pick the export's resources out of ``snapshot``.

    Args:
        snapshot: Store content at kick-off.
        params: The kick-off parameters.
        members: Patient ids of the group (group level only).
        type_allowed: Whether the client's token may read a type.
    """
    all_patients = {e.key[1]: e for e in snapshot.entries if e.key[0] == "Patient"}
    if params.level == SYSTEM:
        in_scope: set[str] | None = None
    elif members is None:  # every patient, deleted ones too (their deletes are reported)
        deleted = {t.key[1] for t in snapshot.tombstones if t.key[0] == "Patient"}
        in_scope = set(all_patients) | deleted
    else:
        in_scope = set(members)
    if in_scope is not None and params.patients is not None:
        in_scope &= params.patients

    def wanted(entry: Entry) -> bool:
        rtype = entry.key[0]
        if params.types is not None and rtype not in params.types:
            return False
        if not type_allowed(rtype):
            return False
        return in_scope is None or patient_of(entry) in in_scope

    since = params.since
    entries = [
        e
        for e in snapshot.entries
        if (since is None or e.last_updated > since) and wanted(e) and _filtered(e, params)
    ]
    entries.sort(key=lambda e: e.key)
    tombstones: list[Tombstone] = []
    if since is not None:
        tombstones = [t for t in snapshot.tombstones if t.deleted_at > since and wanted(t.entry)]
        tombstones.sort(key=lambda t: t.key)
    headers: dict[str, Entry] = {}
    if type_allowed("Patient"):
        headers = {pid: e for pid, e in all_patients.items() if in_scope is None or pid in in_scope}
    return Selection(entries, tombstones, headers)


def _filtered(entry: Entry, params: ExportParams) -> bool:
    """``_typeFilter``: any query of the entry's type must match (types without one pass)."""
    queries = params.type_filters.get(entry.key[0])
    if not queries:
        return True
    return any(all(accept(entry) for accept in q.filters) for q in queries)
