"""Measure fhir.resources.R4B validation: resources per second, and what it adds to a load.

    PYTHONPATH=. .venv/bin/python bench/validation_throughput.py [--patients 2000]
        [--data DIR] [--page-size 10000] [--repeat 2] [--no-load]

Reads synthetic NDJSON (generated into a temporary directory unless ``--data`` names one),
parses every line as a load does, groups the resources into pages of one type, then times
:meth:`loaders.validation.Validator.invalid` over every page, best of ``--repeat``, for
``sample:10`` and ``full`` with 1 worker (in process) and 2 workers (process pool, started
and warmed before timing; its start-up is printed apart). ``input/s`` is resources of the
input per second, ``validated/s`` those actually validated (a tenth of them for the sample).

Then (unless ``--no-load``) ``load files`` of the same data into a fresh warehouse with
validation ``off``, ``sample:10`` and ``full`` (all cores), best of ``--repeat``: wall time
and the overhead over ``off``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from loaders.load_files import load_files
from loaders.resources import ParsedResource, parse_resource_bytes
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from loaders.validation import (
    OFF,
    ValidationMode,
    Validator,
    default_workers,
    parse_validation_mode,
    shutdown_pools,
)
from loaders.validation.pool import CHUNKS_PER_WORKER, MIN_CHUNK

AS_OF = datetime(2026, 12, 1, tzinfo=UTC)
MODES = ("sample:10", "full")


def _pages(data: Path, page_size: int) -> list[list[ParsedResource]]:
    by_type: dict[str, list[ParsedResource]] = defaultdict(list)
    for path in sorted(data.glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            parsed = parse_resource_bytes(line)
            if isinstance(parsed, ParsedResource):
                by_type[parsed.resource_type].append(parsed)
    return [
        resources[start : start + page_size]
        for _, resources in sorted(by_type.items())
        for start in range(0, len(resources), page_size)
    ]


def _validate(
    pages: list[list[ParsedResource]], mode: ValidationMode, workers: int, repeat: int
) -> tuple[float, int, int]:
    best, validated, invalid = float("inf"), 0, 0
    for _ in range(repeat):
        validator = Validator(mode, workers)
        started = time.perf_counter()
        for page in pages:
            validator.invalid(page)
        best = min(best, time.perf_counter() - started)
        validated, invalid = validator.validated, validator.invalid_count
    return best, validated, invalid


def _warm_pool(pages: list[list[ParsedResource]], workers: int) -> float:
    """Start the pool (if any) and import the models of every type; return seconds."""
    started = time.perf_counter()
    validator = Validator(parse_validation_mode("full"), workers)
    for page in pages:
        validator.invalid(page[: workers * CHUNKS_PER_WORKER * MIN_CHUNK])
    return time.perf_counter() - started


def _load(data: Path, scratch: Path, mode: ValidationMode, repeat: int) -> tuple[float, int]:
    best, quarantined = float("inf"), 0
    for attempt in range(repeat):
        root = scratch / f"load-{mode}-{attempt}".replace(":", "-")
        settings = LoadSettings(
            duckdb_path=root / "fhir.duckdb",
            landing_root=root / "landing",
            source_system="bench",
            validation=mode,
        )
        started = time.perf_counter()
        report = load_files(data, replace(settings))
        best = min(best, time.perf_counter() - started)
        quarantined = report.run.resources_quarantined
    return best, quarantined


def main() -> None:
    logging.getLogger("loaders").setLevel(logging.WARNING)
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")  # dlt: a schema-hint note per table
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--data", type=Path, help="a directory of NDJSON files to use instead")
    parser.add_argument("--page-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-load", action="store_true", help="skip the load comparison")
    args = parser.parse_args()
    out = sys.stdout
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        data = args.data
        if data is None:
            data = scratch / "data"
            generate(GenerateOptions(patients=args.patients, seed=7, out=data, as_of=AS_OF))
        pages = _pages(data, args.page_size)
        total = sum(len(page) for page in pages)
        out.write(f"{total:,} resources in {len(pages)} pages; {default_workers()} cores\n\n")
        _warm_pool(pages, 1)  # this process imports every type's model once
        warm = _warm_pool(pages, 2)
        out.write(f"pool of 2 workers started and warmed in {warm:.1f} s (not in the figures)\n\n")
        out.write("| mode | workers | seconds | input/s | validated/s | invalid |\n")
        out.write("|---|---|---|---|---|---|\n")
        for text in MODES:
            mode = parse_validation_mode(text)
            for workers in (1, 2):
                seconds, validated, invalid = _validate(pages, mode, workers, args.repeat)
                out.write(
                    f"| {mode} | {workers} | {seconds:.2f} | {total / seconds:,.0f} | "
                    f"{validated / seconds:,.0f} | {invalid} |\n"
                )
                out.flush()
        if not args.no_load:
            out.write("\n| load files | seconds | resources/s | overhead vs off | quarantined |\n")
            out.write("|---|---|---|---|---|\n")
            _load(data, scratch / "warm-up", OFF, 1)  # imports and first-use costs, untimed
            baseline = 0.0
            for mode in (OFF, *(parse_validation_mode(text) for text in MODES)):
                seconds, quarantined = _load(data, scratch, mode, args.repeat)
                baseline = baseline or seconds
                overhead = f"{(seconds / baseline - 1) * 100:+.0f}%" if mode != OFF else "-"
                out.write(
                    f"| validation {mode} | {seconds:.2f} | {total / seconds:,.0f} | "
                    f"{overhead} | {quarantined} |\n"
                )
                out.flush()
    shutdown_pools()


if __name__ == "__main__":
    main()
