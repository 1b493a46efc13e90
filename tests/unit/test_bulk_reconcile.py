"""The Bulk export's reconciliation rows: manifest counts per type against resources read."""

from __future__ import annotations

from datetime import UTC, datetime

from loaders.bulk.manifest import Manifest, ManifestFile
from loaders.bulk.reconcile import export_checks

AT = datetime(2026, 12, 6, 12, tzinfo=UTC)
TRANSACTION = datetime(2026, 12, 6, 11, tzinfo=UTC)


def _file(resource_type: str, index: int, count: int | None) -> ManifestFile:
    return ManifestFile("output", resource_type, f"https://h/f/{index}.ndjson", count, index)


def _manifest(*files: ManifestFile) -> Manifest:
    return Manifest(TRANSACTION, "2026-12-06T11:00:00Z", True, output=files)


def test_counts_per_type_over_every_file_and_the_export_window() -> None:
    files = (_file("Patient", 0, 3), _file("Observation", 1, 5), _file("Observation", 2, 4))
    lines = {files[0].key: 3, files[1].key: 5, files[2].key: 4}

    checks = export_checks(_manifest(*files), lines, "2026-12-01T00:00:00Z", AT)

    rows = {c.resource_type: c.row("run", "bulk") for c in checks}
    assert {t: (r["source_count"], r["warehouse_count"], r["status"]) for t, r in rows.items()} == {
        "Observation": (9, 9, "ok"),
        "Patient": (3, 3, "ok"),
    }
    assert rows["Patient"]["window_start"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert rows["Patient"]["window_end"] == TRANSACTION


def test_a_file_short_of_its_count_is_a_delta_and_no_count_is_unchecked() -> None:
    files = (_file("Patient", 0, 3), _file("Condition", 1, None), _file("Condition", 2, 2))
    lines = {files[0].key: 2, files[1].key: 7, files[2].key: 2}

    checks = {c.resource_type: c for c in export_checks(_manifest(*files), lines, None, AT)}

    assert (checks["Patient"].delta, checks["Patient"].status) == (1, "delta")
    assert checks["Condition"].status == "unchecked"
    assert checks["Condition"].warehouse_count == 9
    assert checks["Condition"].window.start is None


def test_files_not_merged_count_zero() -> None:
    files = (_file("Patient", 0, 3),)

    [check] = export_checks(_manifest(*files), {}, None, AT)

    assert (check.source_count, check.warehouse_count, check.status) == (3, 0, "delta")
