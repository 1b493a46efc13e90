"""Measure the schema-drift check: resources per second over landed pages.

    PYTHONPATH=. .venv/bin/python bench/drift_check.py [--patients 1000] [--data DIR]
        [--page-size 10000] [--repeat 3]

Reads synthetic NDJSON (generated into a temporary directory unless ``--data`` names one),
parses every line the way a load does (:func:`loaders.resources.parse_resource_bytes`), groups
the resources into pages of one type, then times :meth:`loaders.drift.DriftLedger.check_page`
over every page (decode + walk + policy), best of ``--repeat``:

- clean: the data as generated (the common case: nothing found);
- drifted: every resource also carries a nested unknown element and a retyped primitive
  (policy ``warn``), so every page records findings;
- clean, walk only: decode + walk of every resource, without the conformance check that lets
  a fitting resource skip both (:mod:`loaders.drift.conformance`): the check's gain;
- for reference, DuckDB's ``json_group_structure`` over the same files (structure only: no
  per-path counts, no kinds per resource).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson

from loaders.drift import DriftAction, DriftLedger, DriftPolicy, DriftRule, detect_documents
from loaders.resources import ParsedResource, parse_resource_bytes
from loaders.synthetic import GenerateOptions, generate

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _pages(data: Path, page_size: int, drift: bool) -> list[tuple[str, list[ParsedResource]]]:
    by_type: dict[str, list[ParsedResource]] = defaultdict(list)
    for path in sorted(data.glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            if drift:
                document = orjson.loads(line)
                document["meta"]["vendorStamp"] = "x"
                document["language"] = 1
                line = orjson.dumps(document)
            parsed = parse_resource_bytes(line)
            if isinstance(parsed, ParsedResource):
                by_type[parsed.resource_type].append(parsed)
    return [
        (resource_type, resources[start : start + page_size])
        for resource_type, resources in sorted(by_type.items())
        for start in range(0, len(resources), page_size)
    ]


def _check(pages: list[tuple[str, list[ParsedResource]]], repeat: int) -> tuple[int, float, int]:
    best = float("inf")
    findings = 0
    policy = DriftPolicy("bench", (DriftRule("*", DriftAction.WARN),))
    for _ in range(repeat):
        ledger = DriftLedger("bench", policy)
        started = time.perf_counter()
        for number, (resource_type, resources) in enumerate(pages):
            ledger.check_page(resource_type, resources, f"page-{number}", AT)
        best = min(best, time.perf_counter() - started)
        findings = len(ledger.findings)
    return sum(len(resources) for _, resources in pages), best, findings


def _walk_only(pages: list[tuple[str, list[ParsedResource]]], repeat: int) -> tuple[int, float]:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for resource_type, resources in pages:
            detect_documents(resource_type, (orjson.loads(r.text) for r in resources))
        best = min(best, time.perf_counter() - started)
    return sum(len(resources) for _, resources in pages), best


def _duckdb_structure(data: Path, repeat: int) -> tuple[int, float]:
    best = float("inf")
    count = 0
    with duckdb.connect() as connection:
        for _ in range(repeat):
            started = time.perf_counter()
            count = 0
            for path in sorted(data.glob("*.ndjson")):
                row = connection.execute(
                    "select count(*), json_group_structure(json) from read_ndjson_objects(?)",
                    [str(path)],
                ).fetchone()
                count += row[0] if row else 0
            best = min(best, time.perf_counter() - started)
    return count, best


def main() -> None:
    logging.getLogger("loaders.drift").setLevel(logging.ERROR)  # one warning per finding
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--data", type=Path, help="a directory of NDJSON files to use instead")
    parser.add_argument("--page-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data
        if data is None:
            data = Path(scratch) / "data"
            generate(GenerateOptions(patients=args.patients, seed=7, out=data, fmt="ndjson"))
        lines = ["| data | resources | seconds | resources/s | findings |", "|---|---|---|---|---|"]
        for label, drift in (("clean", False), ("drifted", True)):
            pages = _pages(data, args.page_size, drift)
            resources, seconds, findings = _check(pages, args.repeat)
            lines.append(
                f"| {label} | {resources:,} | {seconds:.3f} | {resources / seconds:,.0f} | "
                f"{findings} |"
            )
            if not drift:
                resources, seconds = _walk_only(pages, args.repeat)
                lines.append(
                    f"| clean, walk only | {resources:,} | {seconds:.3f} | "
                    f"{resources / seconds:,.0f} | - |"
                )
        resources, seconds = _duckdb_structure(data, args.repeat)
        lines.append(
            f"| DuckDB json_group_structure (reference) | {resources:,} | {seconds:.3f} | "
            f"{resources / seconds:,.0f} | - |"
        )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
