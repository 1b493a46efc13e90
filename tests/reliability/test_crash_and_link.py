"""Crashes, a locked warehouse, a full landing disk and a lossy link: nothing lost or doubled.

Runs every scenario of ``faults_crash.py`` and ``faults_link.py`` (each gets a fresh work dir),
plus unit tests of the loader code they rely on: the lock translation
(``loaders/warehouse/connect.py``), the full-disk error (``loaders/landing/zone.py``) and the
fault points (``loaders/fault_points.py``).
"""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from loaders import fault_points
from loaders.exceptions import LandingError, LandingFullError, WarehouseLockedError
from loaders.landing import LandingZone
from loaders.load_files import load_files
from loaders.warehouse.connect import connect_warehouse, is_lock_conflict
from loaders.warehouse.raw_writer import RawTableWriter
from tests.reliability import crash_support, faults_crash, faults_link
from tests.reliability.matrix import Scenario

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _ids(scenario: Scenario) -> str:
    return scenario.__name__


@pytest.mark.parametrize("scenario", faults_crash.SCENARIOS, ids=_ids)
def test_crash_scenario_loses_and_doubles_nothing(scenario: Scenario, tmp_path: Path) -> None:
    row = scenario(tmp_path)
    if row.outcome.startswith("skipped: needs root"):  # the tmpfs of the full-disk scenario
        pytest.skip(row.outcome)
    assert (row.lost, row.duplicated) == (0, 0), row.outcome
    assert row.ok, row.outcome
    assert row.expected > 0


def test_lossy_link_loses_and_doubles_nothing(tmp_path: Path) -> None:
    if not faults_link.link_available():
        pytest.skip(faults_link.SKIPPED)
    [scenario] = faults_link.SCENARIOS
    row = scenario(tmp_path)
    assert (row.lost, row.duplicated) == (0, 0), row.outcome
    assert row.ok, row.outcome


# -- the lock translation ----------------------------------------------------------------------


@pytest.fixture
def held_warehouse(tmp_path: Path):
    """A warehouse file another process holds open read-write; yields (path, holder pid)."""
    path = tmp_path / "fhir.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", crash_support.LOCK_HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    yield path, holder.pid
    holder.communicate("", timeout=30)


@pytest.mark.parametrize("read_only", [False, True])
def test_a_held_warehouse_raises_our_locked_error(held_warehouse, read_only: bool) -> None:
    path, pid = held_warehouse
    with pytest.raises(WarehouseLockedError) as caught:
        connect_warehouse(path, read_only=read_only)
    message = str(caught.value)
    assert str(path) in message
    assert f"another process (PID {pid}) holds it open" in message
    assert "run the same command again" in message
    assert "python" not in message  # the holder's program path is not repeated


def test_the_raw_writer_reports_the_lock_through_the_same_place(held_warehouse) -> None:
    path, pid = held_warehouse
    with pytest.raises(WarehouseLockedError, match=f"PID {pid}"):
        RawTableWriter(path, "1", memory_limit="256MB")


def test_other_duckdb_errors_pass_through(tmp_path: Path) -> None:
    (tmp_path / "not-a-database").write_bytes(b"this is not a DuckDB file" * 100)
    with pytest.raises(duckdb.Error) as caught:
        connect_warehouse(tmp_path / "not-a-database")
    assert not isinstance(caught.value, WarehouseLockedError)
    assert not is_lock_conflict(caught.value)
    assert not is_lock_conflict(OSError("Could not set lock on file"))  # not DuckDB's


# -- the full landing disk ---------------------------------------------------------------------


def _failing_write(code: int, written: list[Path]):
    def write_bytes(self: Path, data: bytes) -> int:
        with open(self, "wb") as handle:  # half the page reaches the disk, then it fails
            handle.write(data[: len(data) // 2])
        written.append(self)
        raise OSError(code, "No space left on device" if code == errno.ENOSPC else "Denied")

    return write_bytes


def test_a_full_landing_disk_says_so_and_leaves_no_half_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = LandingZone(tmp_path / "landing", "ehr", "run1")
    written: list[Path] = []
    monkeypatch.setattr(Path, "write_bytes", _failing_write(errno.ENOSPC, written))
    with pytest.raises(LandingFullError) as caught:
        zone.write_page("Patient", [b'{"resourceType":"Patient","id":"secret-id"}'], NOW)
    message = str(caught.value)
    assert message.startswith(f"landing zone full at {tmp_path / 'landing'}: ")
    assert "run the same command again" in message
    assert "secret-id" not in message
    assert written and not any(path.exists() for path in written)  # the temporary is gone
    assert zone.pages == []
    assert list((tmp_path / "landing").rglob("*.ndjson.gz")) == []


def test_other_write_errors_stay_plain_landing_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = LandingZone(tmp_path / "landing", "ehr", "run1")
    written: list[Path] = []
    monkeypatch.setattr(Path, "write_bytes", _failing_write(errno.EACCES, written))
    with pytest.raises(LandingError) as caught:
        zone.write_page("Patient", [b"{}"], NOW)
    assert not isinstance(caught.value, LandingFullError)
    assert not any(path.exists() for path in written)


# -- the fault points --------------------------------------------------------------------------


def test_fault_points_are_off_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fault_points.PAUSE_AT_ENV, raising=False)
    fault_points.reached("landing")  # returns at once
    monkeypatch.setenv(fault_points.PAUSE_AT_ENV, "merge")
    fault_points.reached("landing")  # another point: returns at once


def test_a_fault_point_pauses_the_nth_time_until_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signal_file = tmp_path / "reached"
    monkeypatch.setenv(fault_points.PAUSE_AT_ENV, "committed:2")
    monkeypatch.setenv(fault_points.SIGNAL_ENV, str(signal_file))
    monkeypatch.setattr(fault_points, "_counts", {})
    fault_points.reached("committed")  # the first time passes
    assert not signal_file.exists()
    paused = threading.Thread(target=fault_points.reached, args=("committed",), daemon=True)
    paused.start()
    deadline = time.monotonic() + 10
    while not signal_file.exists():
        assert time.monotonic() < deadline, "the second time never paused"
        time.sleep(0.01)
    assert signal_file.read_text() == "committed"
    assert paused.is_alive()
    signal_file.unlink()  # release
    paused.join(timeout=10)
    assert not paused.is_alive()


def test_load_files_on_a_held_warehouse_names_the_lock(held_warehouse, tmp_path: Path) -> None:
    path, pid = held_warehouse
    source, _ = crash_support.seeded_data(tmp_path / "data", patients=1)
    settings = replace(crash_support.work_settings(tmp_path), duckdb_path=path)
    with pytest.raises(WarehouseLockedError, match=f"PID {pid}"):
        load_files(source, settings)
