"""The ``fhir-elt retention`` command: its parser, its handler and the lines it prints.

A dry run by default (what would be deleted, and why the rest is kept); ``--apply`` deletes.
Kept here so the shared ``loaders/cli.py`` only wires it in.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loaders.retention.landing import LandingPlan
from loaders.retention.operational import OperationalPlan

PARTS = ("all", "landing", "operational")


def add_parser(commands: Any) -> None:
    """Add ``retention`` to the top-level commands."""
    retention = commands.add_parser(
        "retention",
        help="list (or with --apply delete) landing pages and request_log rows past retention",
    )
    retention.add_argument(
        "part",
        nargs="?",
        choices=PARTS,
        default="all",
        help="landing pages, operational rows (request_log) or both (default)",
    )
    retention.add_argument("--apply", action="store_true", help="delete (default: list only)")
    retention.add_argument(
        "--landing-days",
        type=int,
        default=None,
        help="keep landing pages this many days (default: FHIR_ELT_LANDING_RETENTION_DAYS, "
        "fhir_elt.landing_retention_days, else forever)",
    )
    retention.add_argument(
        "--operational-days",
        type=int,
        default=None,
        help="keep request_log rows this many days (default: "
        "FHIR_ELT_OPERATIONAL_RETENTION_DAYS, fhir_elt.operational_retention_days, else forever)",
    )
    retention.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    retention.add_argument("--landing", type=Path, default=None, help="landing zone directory")


def landing_lines(plan: LandingPlan, applied: bool) -> list[str]:
    """What the landing pass deletes (or would) and why the other runs are kept."""
    verb = "deleted" if applied else "would delete"
    lines = [
        f"landing: {verb} {len(plan.deletable):,} run(s), {plan.pages:,} page(s), "
        f"{plan.size_bytes:,} bytes written before {plan.cutoff.isoformat()}"
    ]
    lines += [
        f"  {run.source_system}/{run.run_id}: {len(run.pages):,} page(s)" for run in plan.deletable
    ]
    lines += [
        f"  kept ({reason}): {len(runs):,} run(s)" for reason, runs in sorted(plan.kept.items())
    ]
    return lines


def operational_lines(plan: OperationalPlan, applied: bool) -> list[str]:
    """What the operational pass deletes (or would)."""
    verb = "deleted" if applied else "would delete"
    return [
        f"request_log: {verb} {plan.request_log_rows:,} row(s) older than "
        f"{plan.cutoff.isoformat()}; kept {plan.kept_for_lineage:,} older row(s) that current "
        "raw rows trace to"
    ]


def _now() -> datetime:
    return datetime.now(UTC)


def run_retention(args: argparse.Namespace) -> int:
    """``fhir-elt retention``."""
    from loaders.exceptions import ConfigError
    from loaders.retention.landing import apply_landing, plan_landing
    from loaders.retention.operational import operational_retention
    from loaders.retention.settings import RetentionSettings
    from loaders.settings import LoadSettings

    settings = LoadSettings.resolve(duckdb_path=args.warehouse, landing_root=args.landing)
    if settings.on_snowflake:
        raise ConfigError("retention reads the DuckDB warehouse; it does not run on Snowflake")
    retention = RetentionSettings.resolve(
        landing_days=args.landing_days, operational_days=args.operational_days
    )
    now = _now()
    out: list[str] = []
    if args.part in ("all", "landing"):
        if retention.landing_days is None:
            out.append("landing: no retention set (kept forever)")
        else:
            plan = plan_landing(
                settings.landing_root, settings.duckdb_path, retention.landing_days, now
            )
            if args.apply:
                apply_landing(settings.landing_root, plan)
            out += landing_lines(plan, args.apply)
    if args.part in ("all", "operational"):
        if retention.operational_days is None:
            out.append("request_log: no retention set (kept forever)")
        else:
            rows = operational_retention(
                settings.duckdb_path, retention.operational_days, now, apply=args.apply
            )
            out += operational_lines(rows, args.apply)
    if not args.apply:
        out.append("dry run: nothing deleted (add --apply to delete)")
    sys.stdout.write("\n".join(out) + "\n")
    return 0
