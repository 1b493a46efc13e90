"""Run one hostile case through ``load files`` and judge the outcome against the warehouse.

A run is judged on what it left behind, not on what it said: the warehouse's raw tables and
quarantine rows, the run record, the exception or exit code, and every log line. It ends in
one of three verdicts:

- ``clear_error``: the run raised one of fhir-elt's own exception types (not the reader's
  bug net, :class:`~loaders.exceptions.ReaderError`) whose message names the file, or it
  quarantined what it refused with rows naming file, line and JSON path;
- ``accepted``: everything loaded, nothing refused;
- ``crash``: anything else: another exception type, a traceback, a hang, a partial merge of a
  failed run, a changed earlier row, a marker (payload value) in a message, log line or
  quarantine row, or an outcome other than the case expects (``problems`` says which).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import orjson

from loaders.exceptions import FhirEltError, ReaderError
from loaders.settings import LoadSettings
from tests.hostile.cases import MARKER, HostileCase, Key, materialise

SOURCE = "hostile"
BASELINE = tuple(f"base-{number}" for number in range(1, 4))
TIMEOUT_SECONDS = 120.0
ROOT = Path(__file__).resolve().parents[2]
CLEAR_ERROR, ACCEPTED, CRASH = "clear_error", "accepted", "crash"


@dataclass
class CaseResult:
    """How one run of one case ended."""

    case: str
    entry_point: str
    verdict: str
    detail: str = ""
    problems: list[str] = field(default_factory=list)


def settings_for(work: Path) -> LoadSettings:
    """Settings of the warehouse and landing zone under ``work``."""
    return LoadSettings(
        duckdb_path=work / "warehouse" / "fhir.duckdb",
        landing_root=work / "landing",
        source_system=SOURCE,
        page_size=1000,
    )


def baseline_file(directory: Path) -> Path:
    """A clean NDJSON file loaded before every case (rows that must survive it)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "baseline.ndjson"
    rows = [
        {
            "resourceType": "Patient",
            "id": resource_id,
            "meta": {"versionId": "1", "lastUpdated": "2026-11-01T00:00:00Z"},
            "gender": "female",
        }
        for resource_id in BASELINE
    ]
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def prepare_template(work: Path) -> Path:
    """A warehouse holding the baseline, to copy for every case (one load instead of many)."""
    from loaders.load_files import load_files

    template = work / "template"
    load_files(baseline_file(work / "baseline"), settings_for(template))
    return template


def _snapshot(settings: LoadSettings) -> dict[Key, tuple[str, str | None, str]]:
    """``{(type, id): (content_hash, version_id, resource)}`` across every raw table."""
    if not settings.duckdb_path.exists():
        return {}
    found: dict[Key, tuple[str, str | None, str]] = {}
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        tables = connection.execute(
            "select table_name from information_schema.columns where table_schema = 'raw_fhir' "
            "and column_name = 'content_hash'"
        ).fetchall()
        for (table,) in tables:
            rows = connection.execute(
                f"select resource_type, id, content_hash, version_id, resource::varchar "
                f'from raw_fhir."{table}"'
            ).fetchall()
            for resource_type, resource_id, content_hash, version_id, resource in rows:
                key = (resource_type, resource_id)
                if key in found:
                    found[("duplicate", f"{resource_type}/{resource_id}")] = ("", None, "")
                found[key] = (content_hash, version_id, resource)
    return found


def _run_rows(settings: LoadSettings) -> tuple[list[tuple], list[tuple]]:
    """Quarantine rows and load_runs rows of the latest run."""
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        (run_id,) = connection.execute(
            "select run_id from raw_fhir.load_runs order by started_at desc limit 1"
        ).fetchone() or (None,)
        try:
            quarantine = connection.execute(
                "select reason, line_number, json_path, source_file from raw_fhir.quarantine "
                "where run_id = ?",
                [run_id],
            ).fetchall()
        except duckdb.CatalogException:  # no run has quarantined anything yet
            quarantine = []
        runs = connection.execute(
            "select status, error from raw_fhir.load_runs where run_id = ?", [run_id]
        ).fetchall()
    return quarantine, runs


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage())
        except Exception:  # a record that cannot format is not ours to judge
            self.lines.append(str(record.msg))


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every log record that reaches the root logger, at DEBUG, as formatted messages.

    The root's other handlers are set aside meanwhile (a runner printing WARNING and above
    would otherwise print every DEBUG line of the run).
    """
    capture = _Capture()
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    root.handlers = [capture]
    root.setLevel(logging.DEBUG)
    try:
        yield capture.lines
    finally:
        root.handlers = handlers
        root.setLevel(level)


def _load_in_process(path: Path, settings: LoadSettings) -> tuple[BaseException | None, bool]:
    """Run ``load_files`` on a thread with a timeout; (exception or None, hung)."""
    from loaders.load_files import load_files

    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            load_files(path, settings)
            outcome.append(None)
        except BaseException as error:  # judged by the caller
            outcome.append(error)

    thread = threading.Thread(target=target, name="hostile-load", daemon=True)
    thread.start()
    thread.join(TIMEOUT_SECONDS)
    if thread.is_alive():
        return None, True
    return outcome[0], False


def leaks_marker(texts: list[str]) -> bool:
    """Whether any text carries the planted marker (case-insensitive)."""
    marker = MARKER.lower()
    return any(marker in text.lower() for text in texts)


def run_case(case: HostileCase, work: Path, template: Path, *, cli: bool = False) -> CaseResult:
    """Load the case's file into a copy of ``template`` (in-process, or the CLI); judge it."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(template, work)
    settings = settings_for(work)
    before = _snapshot(settings)
    path = materialise(case, work / "in")
    result = CaseResult(case.name, "cli" if cli else "api", CRASH)
    messages: list[str] = []
    error: BaseException | None = None
    exit_code: int | None = None
    if cli:
        completed = _run_cli(path, settings)
        if completed is None:
            result.problems.append(f"hung for more than {TIMEOUT_SECONDS:.0f} s")
            return result
        exit_code = completed.returncode
        output = completed.stdout + completed.stderr
        messages.append(output)
        if "Traceback" in output:
            result.problems.append("the command printed a traceback")
    else:
        with captured_logs() as lines:
            error, hung = _load_in_process(path, settings)
        messages.extend(lines)
        if hung:
            result.problems.append(f"hung for more than {TIMEOUT_SECONDS:.0f} s")
            return result
        if error is not None:
            messages.append(str(error))
    _judge(case, result, settings, before, path, error, exit_code, messages)
    return result


def _run_cli(path: Path, settings: LoadSettings) -> subprocess.CompletedProcess[str] | None:
    command = [
        sys.executable,
        "-m",
        "loaders.cli",
        "load",
        "files",
        str(path),
        "--warehouse",
        str(settings.duckdb_path),
        "--landing",
        str(settings.landing_root),
        "--source-system",
        SOURCE,
    ]
    try:
        return subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIMEOUT_SECONDS,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None


def _judge(
    case: HostileCase,
    result: CaseResult,
    settings: LoadSettings,
    before: dict[Key, tuple[str, str | None, str]],
    path: Path,
    error: BaseException | None,
    exit_code: int | None,
    messages: list[str],
) -> None:
    expected = case.expected
    problems = result.problems
    after = _snapshot(settings)
    quarantine, runs = _run_rows(settings)
    failed = error is not None or exit_code == 1
    # What the run raised or how the command exited.
    if error is not None:
        if not isinstance(error, FhirEltError) or isinstance(error, ReaderError):
            problems.append(f"unexpected exception {type(error).__name__}")
        elif expected.error is None or not isinstance(error, expected.error):
            problems.append(f"raised {type(error).__name__}, expected no error")
        if str(path) not in str(error) and path.name not in str(error):
            problems.append("the error message does not name the file")
        result.detail = f"{type(error).__name__}"
    elif exit_code is not None:
        wanted = 1 if expected.error else (3 if expected.refused else 0)
        if exit_code != wanted:
            problems.append(f"exit {exit_code}, expected {wanted}")
        if exit_code == 1 and path.name not in messages[0]:
            problems.append("the error output does not name the file")
        result.detail = f"exit {exit_code}"
    elif expected.error is not None:
        problems.append(f"no error, expected {expected.error.__name__}")
    # Earlier rows survive, unchanged; a failed run merges nothing.
    for key, value in before.items():
        if after.get(key) != value:
            problems.append(f"an earlier row changed or vanished ({key[0]})")
            break
    added = {key for key in after if key not in before}
    if any(key[0] == "duplicate" for key in added):
        problems.append("a key is stored twice")
    if failed:
        if added:
            problems.append(f"partial merge: {len(added)} row(s) of a failed run are stored")
        if not runs or runs[0][0] != "failed":
            problems.append("the failed run is not recorded as failed")
        elif runs[0][1] is not None:
            messages.append(runs[0][1])
    elif expected.prefix is not None:
        order = {key: position for position, key in enumerate(expected.prefix)}
        positions = sorted(order.get(key, -1) for key in added)
        if not positions or positions != list(range(len(positions))):
            problems.append("the rows loaded are not a prefix of the file")
        elif len(positions) >= len(expected.prefix) and case.name == "truncated_gzip":
            problems.append("every line loaded from a truncated stream")
    elif added != expected.merged:
        problems.append(
            f"merged {len(added)} key(s), expected {len(expected.merged)} "
            f"({len(added - expected.merged)} unexpected, {len(expected.merged - added)} missing)"
        )
    for key, version in expected.versions.items():
        if key in after and after[key][1] != version:
            problems.append(f"versionId {after[key][1]} won for a duplicate, expected {version}")
    for key, reference in expected.references.items():
        if key in after:
            stored = orjson.loads(after[key][2]).get("subject", {}).get("reference")
            if stored != reference:
                problems.append(f"reference of {key[0]} rewritten wrongly")
    # Quarantine rows: exactly the expected ones, naming the file, with no value in them.
    got = sorted((reason, line, json_path) for reason, line, json_path, _ in quarantine)
    if not failed:
        want = sorted(expected.refused)
        matches = len(got) == len(want) and all(
            g[0] == w[0] and g[2] == w[2] and (w[1] == -1 or g[1] == w[1])
            for g, w in zip(got, want, strict=True)
        )
        if not matches:
            problems.append(f"quarantine rows {got}, expected {want}")
    if any(source != str(path) for *_, source in quarantine):
        problems.append("a quarantine row does not name the file")
    messages.extend(f"{reason} {json_path} {source}" for reason, _, json_path, source in quarantine)
    if leaks_marker(messages):
        problems.append("a payload value appears in a message, log line or quarantine row")
    if problems:
        result.verdict = CRASH
    elif failed or quarantine:
        result.verdict = CLEAR_ERROR
    else:
        result.verdict = ACCEPTED
