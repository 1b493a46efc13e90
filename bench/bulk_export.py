"""Measure a Bulk Data export from the local test server, end to end, and its peak memory.

    PYTHONPATH=. .venv/bin/python bench/bulk_export.py [--patients 2200] [--per-file 10000 200000]

Generates synthetic patients (2,200 give about 100,000 resources), serves them from the local
FHIR test server, and runs ``fhir-elt load bulk`` in a child process (kick-off, polls,
manifest, parallel downloads, landing, merge into a fresh DuckDB warehouse, run record),
timed by ``/usr/bin/time`` for wall time and peak RSS of the loader alone. Then checks the
warehouse against the server's truth (0 lost, 0 duplicated), and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from tests.fhir_server import FhirTestServer, Scenario, load_ndjson_dir
from tests.integration.bulk_support import SOURCE, compare


def _load(server: FhirTestServer, work: Path, concurrency: int) -> tuple[float, int, int, str]:
    """Run ``load bulk`` in a child; return wall seconds, peak RSS in KB, exit code, stdout."""
    prefix = f"SOURCES__FHIR_BULK__{SOURCE.upper()}__"
    env = {
        **os.environ,
        prefix + "BASE_URL": server.base_url,
        prefix + "MIN_POLL_INTERVAL_SECONDS": "0.2",
        prefix + "DOWNLOAD_CONCURRENCY": str(concurrency),
        "PYTHONPATH": str(Path.cwd()),
    }
    timing = work / "time.txt"
    command = [
        "/usr/bin/time", "-f", "%e %M", "-o", str(timing),
        sys.executable, "-m", "loaders.cli", "load", "bulk", "--source", SOURCE,
        "--warehouse", str(work / "w.duckdb"), "--landing", str(work / "landing"),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds, peak_kb = timing.read_text().split()[-2:]
    return float(seconds), int(peak_kb), done.returncode, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=2200)
    parser.add_argument(
        "--per-file",
        type=int,
        nargs="+",
        default=[10_000, 200_000],
        help="resources per output file, one run each (memory must not grow with file size)",
    )
    parser.add_argument("--concurrency", type=int, default=2, help="parallel downloads")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(GenerateOptions(patients=args.patients, seed=11, out=root / "data", fmt="ndjson"))
        data_bytes = sum(p.stat().st_size for p in (root / "data").glob("*.ndjson"))
        resources = load_ndjson_dir(root / "data")
        started = time.perf_counter()
        with FhirTestServer(resources, Scenario()) as server:
            server_seconds = time.perf_counter() - started
            for per_file in args.per_file:
                work = root / f"run-{per_file}"
                work.mkdir()
                server.scenario.bulk_resources_per_file = per_file
                files_before = server.stats.bulk_files_served
                seconds, peak_kb, code, output = _load(server, work, args.concurrency)
                if code != 0:
                    sys.stdout.write(output)
                    raise SystemExit(f"load bulk exited {code}")
                settings = LoadSettings(
                    duckdb_path=work / "w.duckdb", landing_root=work / "landing"
                )
                exact = compare(settings, server.truth()).exact
                files = server.stats.bulk_files_served - files_before
                rows.append(
                    f"| {files} files of up to {per_file:,} | {seconds:.1f} | "
                    f"{len(resources) / seconds:,.0f} | {peak_kb / 1024:.0f} | {exact} |"
                )
    lines = [
        f"Bulk Data export of {len(resources):,} resources ({data_bytes / 1e6:.0f} MB NDJSON), "
        f"{args.concurrency} parallel downloads, kick-off to run recorded in a child process; "
        f"test server built in {server_seconds:.1f} s (not counted)",
        "| output files | seconds | resources/s | peak RSS MB | exact (0 lost, 0 duplicated) |",
        "|---|---|---|---|---|",
        *rows,
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
