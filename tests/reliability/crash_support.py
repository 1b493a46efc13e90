"""What the crash and link scenarios share: seeded data, ``fhir-elt`` subprocesses, the verdict.

The data is the synthetic generator's (seeded, fixed ``as_of``), so a server started in another
process or network namespace over the same files has the same truth. Killed and failing runs are
real ``fhir-elt`` processes (``python -m loaders.cli``); resumes run in this process through the
same entry points (``run_rest``, ``load_files``), which skips a 3 s interpreter start per run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from tests.fhir_server import load_ndjson_dir
from tests.fhir_server.store import Resource
from tests.integration import warehouse_truth
from tests.integration.rest_support import SOURCE, rest_config, run
from tests.reliability.matrix import FaultOutcome

REPO = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
SINCE = datetime(1900, 1, 1, tzinfo=UTC)
# Small enough to keep a scenario near 10 s on a loaded 2-core machine, large enough for
# several pages per type (page size 50) and every core resource type.
PATIENTS = 8
SEED = 1
Truth = dict[tuple[str, str], tuple[str, str]]
# ``python -c LOCK_HOLDER <file>``: opens the DuckDB file read-write, prints "held", and keeps
# it open until its standard input closes.
LOCK_HOLDER = (
    "import sys, duckdb\n"
    "connection = duckdb.connect(sys.argv[1])\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


def seeded_data(work_dir: Path, patients: int = PATIENTS) -> tuple[Path, list[Resource]]:
    """Generate the seeded synthetic NDJSON under ``work_dir/source``; return it and its lines."""
    out = work_dir / "source"
    generate(
        GenerateOptions(
            patients=patients, seed=SEED, out=out, fmt="ndjson", defect_rate=0.0, as_of=AS_OF
        )
    )
    return out, load_ndjson_dir(out)


def file_truth(resources: list[Resource]) -> Truth:
    """``(type, id) -> (versionId, lastUpdated)`` of the newest version of each resource."""
    truth: Truth = {}
    for resource in resources:
        key = (resource["resourceType"], resource["id"])
        meta = resource["meta"]
        if key not in truth or int(meta["versionId"]) > int(truth[key][0]):
            truth[key] = (str(meta["versionId"]), str(meta["lastUpdated"]))
    return truth


def work_settings(work_dir: Path, source_system: str = SOURCE) -> LoadSettings:
    """A warehouse and landing zone under ``work_dir``."""
    return LoadSettings(
        duckdb_path=work_dir / "warehouse" / "fhir.duckdb",
        landing_root=work_dir / "landing",
        source_system=source_system,
        page_size=1000,
    )


def cli_env(**extra: str) -> dict[str, str]:
    """Environment of a ``fhir-elt`` subprocess: this checkout importable, text logs."""
    return {**os.environ, "PYTHONPATH": str(REPO), "FHIR_ELT_LOG_FORMAT": "text", **extra}


def rest_env(base_url: str, **extra: str) -> dict[str, str]:
    """Environment of a ``fhir-elt`` subprocess reading the REST source ``ehr`` at ``base_url``."""
    prefix = "SOURCES__FHIR_REST__EHR__"
    return cli_env(
        **{
            prefix + "BASE_URL": base_url,
            prefix + "PAGE_SIZE": "50",
            prefix + "RETRY_BASE_DELAY": "0.05",
            prefix + "RETRY_MAX_DELAY": "0.5",
            prefix + "CONNECT_TIMEOUT": "5",
            prefix + "READ_TIMEOUT": "10",
            **extra,
        }
    )


def backfill_command(settings: LoadSettings) -> list[str]:
    """``fhir-elt backfill`` of source ``ehr`` since 1900 into ``settings``' warehouse."""
    return [
        sys.executable, "-m", "loaders.cli", "backfill", "--source", SOURCE,
        "--since", "1900-01-01",
        "--warehouse", str(settings.duckdb_path), "--landing", str(settings.landing_root),
    ]  # fmt: skip


def load_files_command(settings: LoadSettings, source: Path) -> list[str]:
    """``fhir-elt load files`` of ``source`` into ``settings``' warehouse."""
    return [
        sys.executable, "-m", "loaders.cli", "load", "files", str(source),
        "--source-system", settings.source_system,
        "--warehouse", str(settings.duckdb_path), "--landing", str(settings.landing_root),
    ]  # fmt: skip


def start(command: list[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """Start a ``fhir-elt`` subprocess (output captured as text)."""
    return subprocess.Popen(
        command,
        env=dict(env),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_backfill(
    settings: LoadSettings, base_url: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run :func:`backfill_command` against ``base_url`` to its end (output captured as text)."""
    return subprocess.run(
        backfill_command(settings),
        env=rest_env(base_url),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``condition`` every 20 ms.

    Raises:
        TimeoutError: It did not hold within ``seconds`` (``what`` says what was awaited).
    """
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.02)


def resume_rest(settings: LoadSettings, base_url: str, **overrides: Any) -> int:
    """The same backfill again, in this process; returns its exit code."""
    config = replace(rest_config(base_url), **overrides)
    return run(settings, config, since=SINCE).exit_code


@dataclass(frozen=True)
class Verdict:
    """The warehouse against the truth, as the matrix counts it."""

    expected: int
    lost: int
    duplicated: int
    extra: int

    @property
    def exact(self) -> bool:
        return not (self.lost or self.duplicated or self.extra)


def verdict(settings: LoadSettings, truth: Truth) -> Verdict:
    """Lost (missing or stale), duplicated and unexpected keys of ``settings.source_system``."""
    comparison = warehouse_truth.compare(settings, truth, settings.source_system)
    return Verdict(
        len(truth),
        len(comparison.lost | comparison.stale),
        comparison.duplicated,
        len(comparison.extra),
    )


def leaked_ids(text: str, truth: Truth) -> int:
    """How many resource ids of ``truth`` appear in ``text`` (output must carry none)."""
    return sum(1 for _, resource_id in truth if resource_id in text)


def landed_pages(settings: LoadSettings) -> list[Path]:
    """Landing pages in place (temporary files excluded)."""
    return sorted(settings.landing_root.rglob("*.ndjson.gz"))


def temporary_files(settings: LoadSettings) -> list[Path]:
    """Temporary landing files (a write that never got renamed into place)."""
    return sorted(settings.landing_root.rglob(".*.tmp"))


def raw_row_count(settings: LoadSettings) -> int:
    """Rows of every raw resource table (0 when there is no warehouse yet)."""
    if not settings.duckdb_path.exists():
        return 0
    stored, duplicated = warehouse_truth.stored_rows(settings, settings.source_system)
    return len(stored) + duplicated


def outcome(
    scenario: str, runs: int, result: Verdict, text: str, problems: list[str]
) -> FaultOutcome:
    """The matrix row: ``ok`` when the warehouse is exact and nothing else went wrong."""
    if result.extra:
        problems = [*problems, f"{result.extra} unexpected keys"]
    line = text if not problems else f"{text}; FAILED: {'; '.join(problems)}"
    return FaultOutcome(
        scenario=scenario,
        runs=runs,
        expected=result.expected,
        lost=result.lost,
        duplicated=result.duplicated,
        outcome=line,
        ok=result.exact and not problems,
    )


def error_line(stderr: str) -> str:
    """The CLI's ``fhir-elt: error:`` line, or the last line of ``stderr``."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("fhir-elt: error:"):
            return line
    return lines[-1] if lines else ""
