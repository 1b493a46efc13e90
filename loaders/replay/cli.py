"""The ``fhir-elt replay`` command: its parser, its handler and the lines it prints.

Kept here so the shared ``loaders/cli.py`` only wires it in.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loaders.replay.run import ReplayReport


def _instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def add_parser(commands: Any) -> None:
    """Add ``replay`` to the top-level commands."""
    replay = commands.add_parser(
        "replay", help="rebuild the raw tables from the landing zone alone (no source needed)"
    )
    replay.add_argument(
        "--source-system", default=None, help="only this source system (default: all landed)"
    )
    replay.add_argument(
        "--since",
        type=_instant,
        default=None,
        metavar="DATE",
        help="only pages fetched at or after this instant (ISO 8601, UTC if no offset)",
    )
    replay.add_argument(
        "--until",
        type=_instant,
        default=None,
        metavar="DATE",
        help="only pages fetched before this instant (ISO 8601, UTC if no offset)",
    )
    replay.add_argument("--types", default=None, help="only these types (comma-separated)")
    replay.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    replay.add_argument("--landing", type=Path, default=None, help="landing zone directory")


def report_lines(report: ReplayReport) -> tuple[list[str], list[str]]:
    """Lines for stdout (per source system and type) and stderr (what was not replayed)."""
    out: list[str] = []
    err: list[str] = []
    for source in report.sources:
        run = source.run
        seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
        out.append(
            f"replay {run.run_id} ({run.source_system}): {run.landing_pages:,} pages, "
            f"{run.resources_read:,} resources read, {run.resources_merged:,} new or changed, "
            f"{run.resources_unchanged:,} unchanged in {seconds:.1f} s"
        )
        for resource_type, count in sorted(run.counts_by_type.items()):
            merged = run.merged_by_type.get(resource_type, 0)
            out.append(f"  {resource_type:<22}{count:>10,} read{merged:>10,} merged")
        if source.refused_pages:
            err.append(
                f"{run.source_system}: {run.resources_quarantined:,} landed line(s) no longer "
                f"parse and were skipped (first in {source.refused_pages[0]})"
            )
        if source.unlisted:
            err.append(
                f"{run.source_system}: {len(source.unlisted):,} landing page(s) are in no run "
                f"manifest and were not replayed (first: {source.unlisted[0]})"
            )
    return out, err


def run_replay(args: argparse.Namespace) -> int:
    """``fhir-elt replay``."""
    from loaders.replay.run import replay
    from loaders.replay.selection import ReplayOptions
    from loaders.settings import LoadSettings

    settings = LoadSettings.resolve(duckdb_path=args.warehouse, landing_root=args.landing)
    types = tuple(name.strip() for name in (args.types or "").split(",") if name.strip())
    options = ReplayOptions(args.source_system, args.since, args.until, types)
    report = replay(settings, options)
    out, err = report_lines(report)
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    if err:
        sys.stderr.write("\n".join(err) + "\n")
    return report.exit_code
