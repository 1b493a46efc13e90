"""A merged Bulk Data export's reconciliation: the manifest's counts against what landed.

A manifest may give each output file's ``count``. Every file is already verified against it as
it downloads (a short file is fetched again, then the run fails), so a difference here means a
file was accepted without a count, or a count the server got wrong that no re-download fixed.
Once the export is merged, one ``reconciliation_checks`` row per resource type (the manifest's
``type``) records the manifest's total against the resources read from that type's files, over
the window ``(_since, transactionTime]``. Bulk exports then appear beside REST checks in the
``reconciliation_status`` model and its test, and in the reconciliation alert. A type whose
files carry no count is recorded as ``unchecked``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime

from loaders.bulk.manifest import Manifest
from loaders.reconcile.compare import WindowCheck
from loaders.resources import parse_instant
from loaders.rest.windows import Window


def export_checks(
    manifest: Manifest, lines_by_file: Mapping[str, int], since: str | None, at: datetime
) -> list[WindowCheck]:
    """One check per resource type of the manifest's output files.

    Args:
        manifest: The export's whole manifest.
        lines_by_file: Resources read from each merged file, by ``ManifestFile.key`` (over
            every run of the job, so a resumed export counts the files of earlier runs).
        since: The export's ``_since`` as sent (None: everything up to transactionTime).
        at: When the check is recorded (UTC).
    """
    declared: dict[str, int | None] = {}
    landed: dict[str, int] = defaultdict(int)
    for entry in manifest.output:
        total = declared.get(entry.resource_type, 0)
        declared[entry.resource_type] = (
            None if total is None or entry.count is None else total + entry.count
        )
        landed[entry.resource_type] += lines_by_file.get(entry.key, 0)
    window = Window(parse_instant(since) if since else None, manifest.transaction_time)
    checks = []
    for resource_type in sorted(declared):
        source = declared[resource_type]
        warehouse = landed[resource_type]
        delta = None if source is None else source - warehouse
        checks.append(WindowCheck(resource_type, window, source, warehouse, delta, at))
    return checks
