"""Fault matrix rows for crashes: ``kill -9`` mid-run, a locked warehouse, a full landing disk.

Each scenario runs a real ``fhir-elt`` process against the local FHIR test server (or input
files), breaks it at a deterministic point, resumes, and compares the warehouse with the truth:

- kill -9 during extract: the server hangs every data request from the 25th on (pages have
  landed by then), so the process is provably waiting on the source when it is killed;
- kill -9 during landing / merge / after the raw commit: the loader's fault points
  (:mod:`loaders.fault_points`, ``FHIR_ELT_FAULT_PAUSE_AT``) pause the process at the point and
  report it through a signal file; the process is killed there;
- warehouse locked: a second process holds the DuckDB file open read-write; the run must fail
  fast with :class:`~loaders.exceptions.WarehouseLockedError`'s message;
- landing disk full: the landing root is a tiny tmpfs (root only); the run must stop with
  ``landing zone full at <root>`` and leave no half-written page or merged row without its page.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb

from loaders.fault_points import PAUSE_AT_ENV, SIGNAL_ENV
from loaders.load_files import load_files
from loaders.settings import LoadSettings
from tests.fhir_server import FhirTestServer, Scenario
from tests.fhir_server.scenario import FaultPlan
from tests.reliability import crash_support as support
from tests.reliability.matrix import FaultOutcome
from tests.reliability.matrix import Scenario as MatrixScenario

KILL_TIMEOUT = 120.0
STALL_SECONDS = 300.0


def _killed_run(
    process: subprocess.Popen[str], condition: Callable[[], bool], what: str
) -> tuple[bool, str]:
    """Wait for ``condition`` while ``process`` runs, then SIGKILL it.

    Returns:
        Whether it was killed at the point (False: it ended or the point never came), and why not.
    """
    try:
        support.wait_until(
            lambda: bool(condition()) or process.poll() is not None, KILL_TIMEOUT, what
        )
    except TimeoutError as error:
        process.kill()
        process.communicate(timeout=30)
        return False, str(error)
    if process.poll() is not None:
        _, stderr = process.communicate()
        return (
            False,
            f"the run ended (exit {process.returncode}) before {what}: "
            f"{support.error_line(stderr)}",
        )
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    return process.returncode == -signal.SIGKILL, f"exit {process.returncode} instead of SIGKILL"


@dataclass
class _StallFrom(Scenario):
    """A test-server scenario whose data requests hang from the ``stall_from``-th on.

    The hang lasts until the server stops (or ``stall_from`` is set back to 0 for new requests),
    so a client that sent them is provably waiting on the source.
    """

    stall_from: int = 0
    _seen: int = field(default=0, init=False, repr=False, compare=False)

    def plan(self, *, token_request: bool = False) -> FaultPlan:
        plan = super().plan(token_request=token_request)
        if token_request:
            return plan
        with self._lock:
            self._seen += 1
            seen = self._seen
        if self.stall_from and seen >= self.stall_from:
            return replace(plan, slow_seconds=STALL_SECONDS)
        return plan


def kill9_during_extract(work_dir: Path) -> FaultOutcome:
    """``fhir-elt backfill`` killed while its requests hang on the server, then resumed."""
    name = "kill -9 during extract (REST)"
    _, resources = support.seeded_data(work_dir)
    settings = support.work_settings(work_dir)
    # About 45 data requests make the backfill (13 counts, then pages): from the 25th on, hang.
    with FhirTestServer(resources, _StallFrom(stall_from=25)) as server:
        truth = server.truth()
        process = support.start(
            support.backfill_command(settings), support.rest_env(server.base_url)
        )
        killed, why = _killed_run(
            process,
            lambda: server.stats.slow_responses >= 2,  # both workers wait on a response
            "two requests hanging on the server",
        )
        pages = len(support.landed_pages(settings))
        assert isinstance(server.scenario, _StallFrom)
        server.scenario.stall_from = 0
        if not killed:
            return support.outcome(name, 1, support.verdict(settings, truth), "not killed", [why])
        problems = [] if pages else ["no page had landed when the run was killed"]
        code = support.resume_rest(settings, server.base_url)
        result = support.verdict(settings, truth)
    if code != 0:
        problems.append(f"resume exit {code}")
    text = f"killed with 2 requests hanging ({pages} pages landed); resumed: exit {code}"
    return support.outcome(name, 2, result, text, problems)


def _killed_at_point(work_dir: Path, name: str, point: str, *, files: bool = False) -> FaultOutcome:
    """A run paused at fault point ``point`` (``FHIR_ELT_FAULT_PAUSE_AT``), killed, resumed."""
    source, resources = support.seeded_data(work_dir)
    signal_file = work_dir / "fault-point-reached"
    fault_env = {PAUSE_AT_ENV: point, SIGNAL_ENV: str(signal_file)}
    if files:
        settings = support.work_settings(work_dir, "files")
        truth = support.file_truth(resources)
        env = support.cli_env(**fault_env)
        process = support.start(support.load_files_command(settings, source), env)
        killed, why = _killed_run(process, signal_file.exists, f"fault point {point}")
        return _after_kill(
            name, point, settings, truth, killed, why, lambda: _resume_files(settings, source)
        )
    settings = support.work_settings(work_dir)
    with FhirTestServer(resources) as server:
        truth = server.truth()
        env = {**support.rest_env(server.base_url), **fault_env}
        process = support.start(support.backfill_command(settings), env)
        killed, why = _killed_run(process, signal_file.exists, f"fault point {point}")
        return _after_kill(
            name, point, settings, truth, killed, why,
            lambda: support.resume_rest(settings, server.base_url),
        )  # fmt: skip


def _resume_files(settings: LoadSettings, source: Path) -> int:
    return load_files(source, settings).exit_code


def _after_kill(
    name: str,
    point: str,
    settings: LoadSettings,
    truth: support.Truth,
    killed: bool,
    why: str,
    resume: Callable[[], int],
) -> FaultOutcome:
    """The row of a killed run: what it left behind, then the resume's verdict."""
    if not killed:
        return support.outcome(name, 1, support.verdict(settings, truth), "not killed", [why])
    temporaries = len(support.temporary_files(settings))
    rows = support.raw_row_count(settings)
    problems = []
    # Proof that the kill came where it was meant to: after the raw commit there are rows,
    # between a page's write and its rename there is its temporary file.
    if point.startswith("committed") and rows == 0:
        problems.append("no raw rows were committed when the run was killed")
    if point.startswith("landing") and temporaries != 1:
        problems.append(f"{temporaries} temporary pages at the kill, expected 1")
    code = resume()
    result = support.verdict(settings, truth)
    if code != 0:
        problems.append(f"resume exit {code}")
    text = (
        f"killed at {point} ({rows} raw rows committed, {temporaries} temporary page left); "
        f"resumed: exit {code}"
    )
    return support.outcome(name, 2, result, text, problems)


def kill9_during_landing(work_dir: Path) -> FaultOutcome:
    """Killed with the 3rd landing page written to its temporary name, not yet renamed."""
    return _killed_at_point(work_dir, "kill -9 during landing (REST)", "landing:3")


def kill9_during_merge_files(work_dir: Path) -> FaultOutcome:
    """``fhir-elt load files`` killed with rows of its 2nd batch inserted, uncommitted."""
    return _killed_at_point(work_dir, "kill -9 during merge (load files)", "merge:2", files=True)


def kill9_during_merge_rest(work_dir: Path) -> FaultOutcome:
    """``fhir-elt backfill`` killed with rows of its 2nd batch inserted, uncommitted."""
    return _killed_at_point(work_dir, "kill -9 during merge (REST)", "merge:2")


def kill9_after_raw_commit(work_dir: Path) -> FaultOutcome:
    """Killed after the raw rows committed and before the dlt load of the checkpoint."""
    return _killed_at_point(work_dir, "kill -9 between merge and checkpoint (REST)", "committed:1")


def warehouse_locked(work_dir: Path) -> FaultOutcome:
    """Another process holds the warehouse open read-write: fail fast and clearly, then resume."""
    name = "warehouse locked by another process"
    _, resources = support.seeded_data(work_dir)
    settings = support.work_settings(work_dir)
    settings.duckdb_path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", support.LOCK_HOLDER, str(settings.duckdb_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    problems: list[str] = []
    try:
        assert holder.stdout is not None
        if holder.stdout.readline().strip() != "held":
            raise RuntimeError("the lock-holding process did not start")
        with FhirTestServer(resources) as server:
            truth = server.truth()
            started = time.monotonic()
            failed = support.run_backfill(settings, server.base_url, KILL_TIMEOUT)
            seconds = time.monotonic() - started
            message = support.error_line(failed.stderr)
            if failed.returncode != 1:
                problems.append(f"locked run exit {failed.returncode}, expected 1")
            for expected in ("is locked", str(settings.duckdb_path), f"PID {holder.pid}"):
                if expected not in message:
                    problems.append(f"message lacks {expected!r}")
            if support.leaked_ids(failed.stdout + failed.stderr, truth):
                problems.append("output names resource ids")
            landed = len(support.landed_pages(settings))
            holder.communicate("", timeout=30)  # release the lock
            code = support.resume_rest(settings, server.base_url)
            if code != 0:
                problems.append(f"resume exit {code}")
            result = support.verdict(settings, truth)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
    text = (
        f"exit {failed.returncode} in {seconds:.1f} s, {landed} pages landed: "
        f"{_shorten(message, settings)}; resumed: exit {code}"
    )
    return support.outcome(name, 2, result, text, problems)


def _shorten(message: str, settings: LoadSettings) -> str:
    """The message with the work directory's path replaced by ``<dir>`` (stable table text)."""
    return message.replace(str(settings.duckdb_path.parent.parent), "<work>")


def landing_disk_full(work_dir: Path) -> FaultOutcome:
    """The landing zone is a 64 KiB tmpfs: the run stops clearly; after it grows, it resumes."""
    name = "landing disk full"
    _, resources = support.seeded_data(work_dir)
    settings = support.work_settings(work_dir)
    settings.landing_root.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "fhir-elt-landing", str(settings.landing_root)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        return FaultOutcome(
            name, 0, len(resources), 0, 0, "skipped: needs root to mount tmpfs", False
        )
    problems: list[str] = []
    try:
        with FhirTestServer(resources) as server:
            truth = server.truth()
            failed = support.run_backfill(settings, server.base_url, KILL_TIMEOUT)
            message = support.error_line(failed.stderr)
            if failed.returncode != 1:
                problems.append(f"full run exit {failed.returncode}, expected 1")
            if f"landing zone full at {settings.landing_root}" not in message:
                problems.append("message lacks 'landing zone full at <landing root>'")
            if support.leaked_ids(failed.stdout + failed.stderr, truth):
                problems.append("output names resource ids")
            temporaries = len(support.temporary_files(settings))
            if temporaries:
                problems.append(f"{temporaries} half-written temporary pages left")
            problems.extend(_rows_without_intact_page(settings))
            landed = len(support.landed_pages(settings))
            rows = support.raw_row_count(settings)
            subprocess.run(  # free space: the tmpfs grows to 16 MiB
                ["mount", "-o", "remount,size=16m", str(settings.landing_root)], check=True
            )
            code = support.resume_rest(settings, server.base_url)
            if code != 0:
                problems.append(f"resume exit {code}")
            result = support.verdict(settings, truth)
    finally:
        subprocess.run(["umount", "-l", str(settings.landing_root)], check=False)
    text = (
        f"exit {failed.returncode} after {landed} pages ({rows} rows merged): "
        f"{_shorten(message, settings)}; resumed: exit {code}"
    )
    return support.outcome(name, 2, result, text, problems)


def _rows_without_intact_page(settings: LoadSettings) -> list[str]:
    """Problems: merged rows whose landing page is missing, broken, or unlike its manifest row.

    The pages' manifest rows are read from ``raw_fhir.landing_manifest`` (the run's manifest
    file may not have fitted on the full disk).
    """
    if not settings.duckdb_path.exists():
        return []
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        columns = connection.execute(
            "select table_name from information_schema.columns where table_schema = "
            "'raw_fhir' and column_name = 'content_hash'"
        ).fetchall()
        files: set[str] = set()
        for (table,) in columns:
            files.update(
                file
                for (file,) in connection.execute(
                    f"select distinct landing_file from raw_fhir.{table}"
                ).fetchall()
            )
        manifest: dict[str, str] = {}
        if ("landing_manifest",) in connection.execute(
            "select table_name from information_schema.tables where table_schema = 'raw_fhir'"
        ).fetchall():
            manifest = dict(
                connection.execute(
                    "select landing_file, sha256 from raw_fhir.landing_manifest"
                ).fetchall()
            )
    problems = []
    for file in sorted(files):
        try:
            payload = (settings.landing_root / file).read_bytes()
            gzip.decompress(payload)
        except (OSError, EOFError, gzip.BadGzipFile):
            problems.append(f"a merged row's landing page is missing or broken: {file}")
            continue
        if manifest.get(file) not in (None, hashlib.sha256(payload).hexdigest()):
            problems.append(f"a merged row's landing page differs from its manifest row: {file}")
    return problems


SCENARIOS: list[MatrixScenario] = [
    kill9_during_extract,
    kill9_during_landing,
    kill9_during_merge_files,
    kill9_during_merge_rest,
    kill9_after_raw_commit,
    warehouse_locked,
    landing_disk_full,
]


if __name__ == "__main__":  # python -m tests.reliability.faults_crash [name ...]
    import tempfile

    wanted = set(sys.argv[1:])
    for scenario in SCENARIOS:
        if wanted and scenario.__name__ not in wanted:
            continue
        with tempfile.TemporaryDirectory() as directory, contextlib.suppress(KeyboardInterrupt):
            print(scenario(Path(directory)))
