"""Measure a REST backfill from the local test server, with and without injected faults.

    .venv/bin/python bench/rest_backfill.py [--patients 220] [--rate-limit 600]

Prints, side by side in one run: wall time of a backfill of the whole synthetic dataset with
no faults, and with 5% 429s (Retry-After 1 s) and 2% 5xx injected; then the request rate a
rate-limited sync achieves against its configured budget, and the 429s received.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from tests.fhir_server import FhirTestServer, Scenario, load_ndjson_dir
from tests.integration.rest_support import compare, rest_config, run


def _backfill(resources: list[dict], scenario: Scenario, work: Path) -> tuple[float, int, bool]:
    with FhirTestServer(resources, scenario) as server:
        settings = LoadSettings(duckdb_path=work / "w.duckdb", landing_root=work / "landing")
        config = rest_config(server.base_url, page_size=100, retry_base_delay=0.2, read_timeout=10)
        started = time.perf_counter()
        report = run(settings, config, since=datetime(1900, 1, 1, tzinfo=UTC))
        seconds = time.perf_counter() - started
        exact = report.exit_code == 0 and compare(settings, server.truth()).exact
        return seconds, len(report.requests), exact


def rate_against_budget(resources: list[dict], limit: int, work: Path) -> tuple[float, float, int]:
    """A rate-limited sync: requests per minute achieved, the budget (limit x 0.6), 429s.

    The server enforces ``limit`` requests per minute; the client is configured with the same
    limit and headroom 0.6. Also used by ``bench/load_bench.py`` (step g).
    """
    with FhirTestServer(resources, Scenario(rate_limit=(limit, 60.0))) as server:
        settings = LoadSettings(duckdb_path=work / "w.duckdb", landing_root=work / "landing")
        config = rest_config(server.base_url, page_size=20, rate_limit=limit, headroom=0.6)
        run(settings, config)
        times = sorted(r.time for r in server.request_log if r.kind == "data")
        achieved = (len(times) - 1) / (times[-1] - times[0]).total_seconds() * 60
        return achieved, limit * 0.6, server.stats.sent_429


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=220)
    parser.add_argument("--rate-limit", type=int, default=600, help="requests per minute")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(GenerateOptions(patients=args.patients, seed=11, out=root / "data", fmt="ndjson"))
        resources = load_ndjson_dir(root / "data")
        clean = _backfill(resources, Scenario(), root / "clean")
        faulty = _backfill(
            resources, Scenario(seed=7, fraction_429=0.05, fraction_5xx=0.02), root / "faults"
        )
        achieved, budget, http_429 = rate_against_budget(resources, args.rate_limit, root / "rate")
    lines = [
        f"backfill of {len(resources):,} resources",
        "| run | seconds | requests | exact (0 lost, 0 duplicated) |",
        "|---|---|---|---|",
        f"| no faults | {clean[0]:.1f} | {clean[1]} | {clean[2]} |",
        f"| 5% 429 + 2% 5xx | {faulty[0]:.1f} | {faulty[1]} | {faulty[2]} |",
        f"ratio faults/clean: {faulty[0] / clean[0]:.2f}",
        f"rate: {achieved:.1f} requests/min achieved, budget {budget:.1f} "
        f"({achieved / budget:.2f} of budget), {http_429} 429s",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
