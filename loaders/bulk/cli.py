"""The Bulk Data part of the ``fhir-elt`` command line: ``load bulk`` and ``export cancel``.

Kept here so the shared ``loaders/cli.py`` only wires these in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from loaders.settings import DESTINATIONS
from loaders.validation.mode import VALIDATION_HELP

SOURCE_HELP = "source name: [sources.fhir_bulk.<NAME>] in .dlt config"


def add_parsers(commands: Any, load_sources: Any) -> None:
    """Add ``load bulk`` (to the ``load`` subcommands) and ``export cancel``."""
    bulk = load_sources.add_parser(
        "bulk", help="run or resume a FHIR Bulk Data $export (exit 4: still running, run again)"
    )
    bulk.add_argument("--source", required=True, help=SOURCE_HELP)
    bulk.add_argument("--group", default=None, help="export this Group (Group/<ID>/$export)")
    bulk.add_argument("--types", default=None, help="only these types (comma-separated)")
    bulk.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    bulk.add_argument("--landing", type=Path, default=None, help="landing zone directory")
    bulk.add_argument(
        "--destination",
        choices=DESTINATIONS,
        default=None,
        help="where the raw and operational tables go (default: FHIR_ELT_DESTINATION, else duckdb)",
    )
    bulk.add_argument("--validation", default=None, metavar="MODE", help=VALIDATION_HELP)
    bulk.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar over files on stderr (default: when stderr is a terminal)",
    )

    export = commands.add_parser("export", help="manage FHIR Bulk Data export jobs")
    actions = export.add_subparsers(dest="action", required=True)
    cancel = actions.add_parser("cancel", help="cancel the source's export job(s) in flight")
    cancel.add_argument("--source", required=True, help=SOURCE_HELP)
    cancel.add_argument("--group", default=None, help="only the job exporting this Group")
    cancel.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    cancel.add_argument("--landing", type=Path, default=None, help="landing zone directory")


def _print(out: list[str], err: list[str]) -> None:
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    if err:
        sys.stderr.write("\n".join(err) + "\n")


def run_load_bulk(args: argparse.Namespace) -> int:
    """``fhir-elt load bulk``."""
    from loaders.bulk.commands import report_lines, run_bulk
    from loaders.settings import LoadSettings

    settings = LoadSettings.resolve(
        duckdb_path=args.warehouse,
        landing_root=args.landing,
        destination=args.destination,
        validation=args.validation,
    )
    report = run_bulk(
        args.source, settings, group=args.group, types=args.types, progress=args.progress
    )
    _print(*report_lines(report))
    return report.exit_code


def run_export(args: argparse.Namespace) -> int:
    """``fhir-elt export cancel``."""
    from loaders.bulk.commands import cancel_export, cancel_lines
    from loaders.settings import LoadSettings

    settings = LoadSettings.resolve(duckdb_path=args.warehouse, landing_root=args.landing)
    report = cancel_export(args.source, settings, group=args.group)
    _print(*cancel_lines(report))
    return report.exit_code
