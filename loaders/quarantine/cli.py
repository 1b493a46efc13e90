"""The ``fhir-elt quarantine`` commands (``list``, ``show``, ``retry``) and what they print.

Kept here so the shared ``loaders/cli.py`` only wires them in. Nothing printed holds a
payload or an identifier, except ``show --payload``, which prints the original bytes after a
warning on stderr that they may contain PHI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from loaders.exceptions import ConfigError
from loaders.ops.tables import render_table
from loaders.quarantine.records import (
    EXPLANATIONS,
    OPEN,
    QuarantineEntry,
    find_entry,
    read_entries,
    select_entries,
)
from loaders.quarantine.retries import RESOLVED

PHI_WARNING = (
    "fhir-elt: warning: the original bytes of a quarantined resource may contain PHI; "
    "do not paste them into tickets, chats or logs"
)


def add_parser(commands: Any) -> None:
    """Add ``quarantine list|show|retry`` to the top-level commands."""
    quarantine = commands.add_parser(
        "quarantine", help="list, show and retry quarantined resources"
    )
    actions = quarantine.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="quarantined resources as a table (no payload)")
    listing.add_argument("--source-system", default=None, help="only this source system")
    listing.add_argument("--reason", default=None, help="only this reason, e.g. invalid_json")
    listing.add_argument("--open", action="store_true", help="only those not resolved by a retry")
    show = actions.add_parser("show", help="one quarantined resource: where, why, its retries")
    show.add_argument("id", help="its id (from quarantine list; 6+ leading characters suffice)")
    show.add_argument(
        "--payload",
        action="store_true",
        help="also print the original bytes (may contain PHI; a warning goes to stderr)",
    )
    again = actions.add_parser(
        "retry", help="parse quarantined resources again (after a fix); merge what now loads"
    )
    again.add_argument("ids", nargs="*", metavar="ID", help="the ids to retry")
    again.add_argument("--all", action="store_true", help="retry every open one")
    again.add_argument("--source-system", default=None, help="only this source system")
    for parser in (listing, show, again):
        parser.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
        parser.add_argument("--landing", type=Path, default=None, help="landing zone directory")


def _status(entry: QuarantineEntry) -> str:
    if entry.resolved_by:
        return f"resolved ({entry.resolved_by})"
    return f"open, retried {entry.retries}x" if entry.retries else OPEN


def list_lines(entries: list[QuarantineEntry]) -> list[str]:
    """The ``quarantine list`` table."""
    if not entries:
        return ["no quarantined resources match"]
    rows = [
        (
            entry.id,
            entry.source_system,
            entry.reason,
            entry.json_path,
            entry.source_file,
            entry.line_number,
            entry.quarantined_at,
            _status(entry),
        )
        for entry in entries
    ]
    headers = ("id", "source", "reason", "json path", "source file", "line", "first seen", "status")
    still_open = sum(1 for entry in entries if entry.status == OPEN)
    return [
        render_table(headers, rows, indent=""),
        f"{len(entries):,} quarantined, {still_open:,} open",
    ]


def show_lines(entry: QuarantineEntry) -> list[str]:
    """``quarantine show``: the entry's metadata and why it was refused (no payload)."""
    where = (
        f"{entry.landing_file} line {entry.landing_line}"
        if entry.landing_file
        else "none kept (nothing could be read)"
    )
    fields = [
        ("id", entry.id),
        ("status", _status(entry)),
        ("source system", entry.source_system),
        ("run", entry.run_id),
        ("source file", entry.source_file),
        ("line", str(entry.line_number)),
        ("resource type", entry.resource_type or "-"),
        ("reason", entry.reason),
        ("json path", entry.json_path),
        ("why", EXPLANATIONS.get(entry.reason, "-")),
        ("first seen", entry.quarantined_at.isoformat(timespec="seconds")),
        ("original bytes", where),
    ]
    return [f"{name + ':':<16}{value}" for name, value in fields]


def _settings(args: argparse.Namespace) -> Any:
    from loaders.settings import LoadSettings

    return LoadSettings.resolve(duckdb_path=args.warehouse, landing_root=args.landing)


def run_quarantine(args: argparse.Namespace) -> int:
    """``fhir-elt quarantine list|show|retry``."""
    settings = _settings(args)
    entries = read_entries(settings.duckdb_path)
    if args.action == "list":
        chosen = select_entries(
            entries, source_system=args.source_system, reason=args.reason, open_only=args.open
        )
        sys.stdout.write("\n".join(list_lines(chosen)) + "\n")
        return 0
    if args.action == "show":
        return _show(settings, find_entry(entries, args.id), payload=args.payload)
    return _retry(settings, entries, args)


def _show(settings: Any, entry: QuarantineEntry, *, payload: bool) -> int:
    from loaders.quarantine.payload import PageCache

    sys.stdout.write("\n".join(show_lines(entry)) + "\n")
    if payload:
        original = PageCache(settings.landing_root).original(entry)
        sys.stderr.write(PHI_WARNING + "\n")
        sys.stdout.write("payload:\n")
        sys.stdout.flush()
        sys.stdout.buffer.write(original + b"\n")
        sys.stdout.flush()
    return 0


def _retry(settings: Any, entries: list[QuarantineEntry], args: argparse.Namespace) -> int:
    from loaders.quarantine.retry import retry

    if bool(args.ids) == bool(args.all):
        raise ConfigError("give the ids to retry, or --all (not both)")
    if args.all:
        chosen = select_entries(entries, source_system=args.source_system, open_only=True)
    else:
        chosen = [find_entry(entries, wanted) for wanted in args.ids]
        if args.source_system:
            chosen = [entry for entry in chosen if entry.source_system == args.source_system]
    resolved = [entry for entry in chosen if entry.status != OPEN]
    for entry in resolved:
        sys.stderr.write(f"{entry.id}: already resolved by run {entry.resolved_by}, skipped\n")
    chosen = [entry for entry in chosen if entry.status == OPEN]
    if not chosen:
        sys.stdout.write("nothing to retry\n")
        return 0
    report = retry(settings, chosen)
    for run in report.runs:
        sys.stdout.write(
            f"run {run.run_id} ({run.source_system}): {run.resources_read:,} resources parsed, "
            f"{run.resources_merged:,} new or changed, {run.resources_unchanged:,} unchanged\n"
        )
    for record in report.records:
        detail = (
            f"landed in {record.landing_file}"
            if record.outcome == RESOLVED
            else f"{record.retry_reason}"
            + (f" (path {record.retry_json_path})" if record.retry_json_path else "")
        )
        stream = sys.stdout if record.outcome == RESOLVED else sys.stderr
        stream.write(f"{record.quarantine_id}: {record.outcome}: {detail}\n")
    return report.exit_code
