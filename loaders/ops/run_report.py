"""The run report: one JSON file per REST run, PHI-free, for CI artefacts and dashboards.

It holds the run's record (counts, status, error text written without PHI), each type's
outcome, the ``run_metrics`` rows and any notice (a budget stop). No request URLs, no
parameters, no resource content.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from loaders.rest.sync import SyncReport


def report_document(report: SyncReport) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    return {
        "run": asdict(report.run),
        "outcomes": {name: asdict(outcome) for name, outcome in sorted(report.outcomes.items())},
        "windows": {"planned": report.windows_total, "done": report.windows_done},
        "notices": list(report.notices),
        "metrics": report.metrics,
        "exit_code": report.exit_code,
    }


def write_run_report(path: Path, report: SyncReport) -> None:
    """Write the report as indented JSON (datetimes in ISO 8601)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        orjson.dumps(report_document(report), option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z)
    )
