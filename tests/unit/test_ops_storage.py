"""Landing zone and DuckDB warehouse on object storage (any fsspec URL; a local one here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loaders.cli import main
from loaders.exceptions import LandingIntegrityError
from loaders.ops.storage import pull_landing, pull_warehouse, push_landing, push_warehouse


def _landing(root: Path) -> dict[str, bytes]:
    pages = {
        "epic/Patient/2026-11-22/run1-000001.ndjson.gz": b"page one",
        "epic/Observation/2026-11-22/run1-000002.ndjson.gz": b"page two, longer",
        "epic/_manifests/run1.json": b"{}",
        "epic/_quarantine/2026-11-22/run1-000001.ndjson.gz": b"refused",
    }
    for relative, data in pages.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    (root / "epic/Patient/2026-11-22/.run1-000003.tmp").write_bytes(b"half written")
    return pages


def test_push_uploads_only_new_pages_and_pull_restores_them(tmp_path: Path) -> None:
    remote = (tmp_path / "bucket").as_uri()
    local = tmp_path / "landing"
    pages = _landing(local)

    first = push_landing(local, remote)
    again = push_landing(local, remote)

    assert (first.files, first.skipped) == (4, 0)
    assert (again.files, again.skipped) == (0, 4)
    assert not (tmp_path / "bucket/landing/epic/Patient/2026-11-22/.run1-000003.tmp").exists()
    fresh = tmp_path / "runner" / "landing"
    pulled = pull_landing(remote, fresh, prefix="epic/Observation")
    assert pulled.files == 1
    assert (fresh / "epic/Observation/2026-11-22/run1-000002.ndjson.gz").read_bytes() == pages[
        "epic/Observation/2026-11-22/run1-000002.ndjson.gz"
    ]
    assert pull_landing(remote, fresh).files == 3


def test_a_remote_page_is_never_overwritten(tmp_path: Path) -> None:
    remote = (tmp_path / "bucket").as_uri()
    local = tmp_path / "landing"
    _landing(local)
    push_landing(local, remote)
    (local / "epic/Patient/2026-11-22/run1-000001.ndjson.gz").write_bytes(b"altered page")

    with pytest.raises(LandingIntegrityError, match=r"run1-000001\.ndjson\.gz"):
        push_landing(local, remote)
    remote_page = tmp_path / "bucket/landing/epic/Patient/2026-11-22/run1-000001.ndjson.gz"
    assert remote_page.read_bytes() == b"page one"


def test_warehouse_round_trip_through_the_cli(tmp_path: Path) -> None:
    remote = f"memory://fhir-elt-test-{tmp_path.name}"
    warehouse = tmp_path / "w" / "fhir.duckdb"
    assert pull_warehouse(remote, warehouse).files == 0  # a first run: nothing there yet
    warehouse.parent.mkdir(parents=True)
    warehouse.write_bytes(b"duckdb bytes v1")
    push_warehouse(warehouse, remote)
    warehouse.write_bytes(b"duckdb bytes v2, after the run")
    push_warehouse(warehouse, remote)
    warehouse.unlink()

    assert (
        main(
            [
                "storage",
                "pull",
                "--remote",
                remote,
                "--what",
                "warehouse",
                "--warehouse",
                str(warehouse),
            ]
        )
        == 0
    )
    assert warehouse.read_bytes() == b"duckdb bytes v2, after the run"
    assert main(["storage", "push", "--remote", remote, "--what", "tables"]) == 1
