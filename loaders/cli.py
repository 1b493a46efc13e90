"""The ``fhir-elt`` command line.

Commands:
    generate     write synthetic FHIR R4 data (NDJSON or Bundles), optionally with defects
    load files   land and merge FHIR files into the raw tables
    load rest    incremental sync from a FHIR server's REST search (per-type cursors)
    backfill     pull a date range from a FHIR server, window by window, resumable
    load bulk    run or resume a FHIR Bulk Data $export (kick-off, poll, download, merge)
    export cancel  cancel a Bulk Data export job in flight (DELETE on its status URL)
    summary      print what is in the warehouse and how the last dbt run went
    status       freshness and lag per source and type, last runs, open quarantine and drift
    doctor       check a REST source's configuration, secrets, server, auth and warehouse
    alerts       evaluate the dbt alert models; exit 1 (and post to a webhook) when any is open
    notify       post a PHI-free notice to the alert webhook (scheduled-job failures)
    storage      push/pull the landing zone (and a DuckDB warehouse) to/from object storage
    reconcile    compare a REST source's counts per type and window with the warehouse,
                 repair differing windows within a budget, mark resources gone from the source
                 deleted, record every check in raw_fhir.reconciliation_checks
    replay       rebuild the raw tables from the landing zone alone (manifests verified first)
    quarantine   list / show quarantined resources; retry them after a fix (list, show, retry)
    retention    list (--apply: delete) landing pages and request_log rows past retention
    share        write a new DuckDB file with only the analytic schemas (no PHI) for sharing

Exit codes: 0 success; 1 an error stopped the command (or, for REST, stopped a resource type);
2 bad usage; 3 the load finished but some resources were quarantined (replay: some landed lines
no longer parse; quarantine retry: some still fail); 4 paused (Ctrl-C or
SIGTERM), or (load bulk) the export job is still running on the server: run the same command
again to resume; 5 (reconcile) differences remain after repair or were left over the repair
budget (listed on stderr and in raw_fhir.reconciliation_checks).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from loaders.bulk import cli as bulk_cli
from loaders.exceptions import FhirEltError
from loaders.log_redaction import configure_logging
from loaders.ops import commands as ops_commands
from loaders.quarantine import cli as quarantine_cli
from loaders.replay import cli as replay_cli
from loaders.retention import cli as retention_cli
from loaders.settings import DESTINATIONS
from loaders.warehouse import share as share_cli


def _as_of(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-elt", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        default="auto",
        help="JSON or text log lines (default: FHIR_ELT_LOG_FORMAT, else JSON unless a terminal)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write synthetic FHIR R4 data")
    generate.add_argument("--patients", type=int, required=True, help="number of patients")
    generate.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    generate.add_argument("--out", type=Path, required=True, help="output directory")
    generate.add_argument("--format", choices=("ndjson", "bundle"), default="ndjson")
    generate.add_argument(
        "--defects",
        type=float,
        default=0.0,
        metavar="RATE",
        help="fraction of eligible resources given a planted defect (0-1)",
    )
    generate.add_argument(
        "--as-of",
        type=_as_of,
        default=None,
        metavar="TIMESTAMP",
        help="date the data is current as of (ISO 8601; default: now, UTC)",
    )

    load = commands.add_parser("load", help="load FHIR data into the warehouse")
    load_sources = load.add_subparsers(dest="kind", required=True)
    files = load_sources.add_parser("files", help="load NDJSON / NDJSON.gz / Bundle files")
    files.add_argument("path", type=Path, help="a file or a directory")
    files.add_argument("--source-system", default=None, help="name of the source (default: files)")
    files.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    files.add_argument("--landing", type=Path, default=None, help="landing zone directory")
    add_destination_argument(files)
    add_validation_argument(files)
    files.add_argument(
        "--reread",
        action="store_true",
        help="read every file again, even those an earlier successful run of this source "
        "system loaded with the same content and nothing quarantined (skipped by default)",
    )

    rest = load_sources.add_parser("rest", help="incremental sync from a FHIR REST server")
    _add_rest_arguments(rest)
    rest.add_argument("--group", default=None, help="only this schedule group's types")
    rest.add_argument(
        "--force", action="store_true", help="sync types even if their schedule says not due"
    )

    bulk_cli.add_parsers(commands, load_sources)

    backfill = commands.add_parser(
        "backfill", help="pull a date range from a FHIR REST server (resumable)"
    )
    _add_rest_arguments(backfill)
    backfill.add_argument(
        "--since", type=_as_of, required=True, metavar="DATE", help="start (ISO 8601, exclusive)"
    )
    backfill.add_argument(
        "--until",
        type=_as_of,
        default=None,
        metavar="DATE",
        help="end (ISO 8601, inclusive; default: the server's now, fixed for the job)",
    )

    reconcile = commands.add_parser(
        "reconcile", help="compare a REST source with the warehouse; repair; find deletions"
    )
    reconcile.add_argument(
        "--source", required=True, help="source name: [sources.fhir_rest.<NAME>] in .dlt config"
    )
    reconcile.add_argument(
        "--since", type=_as_of, default=None, metavar="DATE", help="start (exclusive; default: all)"
    )
    reconcile.add_argument(
        "--until",
        type=_as_of,
        default=None,
        metavar="DATE",
        help="end (inclusive; default and upper limit: each type's sync cursor)",
    )
    reconcile.add_argument("--types", default=None, help="only these types (comma-separated)")
    reconcile.add_argument(
        "--repair-budget",
        type=int,
        default=20,
        metavar="N",
        help="repair at most N differing windows (largest first; 0: only report; default 20)",
    )
    reconcile.add_argument(
        "--sweep-deletes",
        action="store_true",
        help="compare ids in every window (finds deletions that equal counts hide)",
    )
    reconcile.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    reconcile.add_argument("--landing", type=Path, default=None, help="landing zone directory")

    summary = commands.add_parser("summary", help="summarise the warehouse and the last dbt run")
    summary.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    summary.add_argument("--target-dir", type=Path, default=Path("target"), help="dbt target/")
    ops_commands.add_parsers(commands)
    replay_cli.add_parser(commands)
    quarantine_cli.add_parser(commands)
    retention_cli.add_parser(commands)
    share_cli.add_parser(commands)
    return parser


def add_destination_argument(parser: argparse.ArgumentParser) -> None:
    """``--destination duckdb|snowflake`` (default: FHIR_ELT_DESTINATION, else duckdb)."""
    parser.add_argument(
        "--destination",
        choices=DESTINATIONS,
        default=None,
        help="where the raw and operational tables go (default: FHIR_ELT_DESTINATION, "
        "else duckdb); snowflake reads destination.snowflake.credentials from dlt config",
    )


def add_validation_argument(parser: argparse.ArgumentParser) -> None:
    """``--validation off|sample:N|full`` (default: FHIR_ELT_VALIDATION, else off)."""
    from loaders.validation.mode import VALIDATION_HELP

    parser.add_argument("--validation", default=None, metavar="MODE", help=VALIDATION_HELP)


def _add_rest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", required=True, help="source name: [sources.fhir_rest.<NAME>] in .dlt config"
    )
    parser.add_argument("--types", default=None, help="only these types (comma-separated)")
    parser.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    parser.add_argument("--landing", type=Path, default=None, help="landing zone directory")
    add_destination_argument(parser)
    add_validation_argument(parser)
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="show what the run would request, then stop"
    )
    parser.add_argument(
        "--max-requests", type=int, default=None, help="stop cleanly after this many requests"
    )
    parser.add_argument(
        "--max-pages", type=int, default=None, help="stop cleanly after this many pages"
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="write the run report (JSON, no PHI) here"
    )


def _run_generate(args: argparse.Namespace) -> int:
    from loaders.synthetic import GenerateOptions, generate

    summary = generate(
        GenerateOptions(
            patients=args.patients,
            seed=args.seed,
            out=args.out,
            fmt=args.format,
            defect_rate=args.defects,
            as_of=args.as_of,
        )
    )
    print(
        f"wrote {summary.total_resources:,} resources for {args.patients:,} patients to "
        f"{args.out} ({args.format}) in {summary.seconds:.1f} s"
    )
    for resource_type, count in sorted(summary.counts_by_type.items()):
        print(f"  {resource_type:<22}{count:>10,}")
    if summary.defects_manifest is not None:
        planted = sum(summary.defects_by_kind.values())
        print(f"planted {planted} defects, listed in {summary.defects_manifest}")
    return 0


def _run_load(args: argparse.Namespace) -> int:
    if args.kind == "bulk":
        return bulk_cli.run_load_bulk(args)
    return _run_rest(args) if args.kind == "rest" else _run_load_files(args)


def _run_rest(args: argparse.Namespace) -> int:
    from loaders.rest.commands import report_lines, run_rest
    from loaders.settings import LoadSettings

    settings = LoadSettings.resolve(
        duckdb_path=args.warehouse,
        landing_root=args.landing,
        destination=args.destination,
        validation=args.validation,
    )
    if args.dry_run:
        from loaders.ops.dry_run import dry_run

        print(
            "\n".join(
                dry_run(
                    args.source,
                    settings,
                    group=getattr(args, "group", None),
                    types=args.types,
                    force=getattr(args, "force", False),
                    since=getattr(args, "since", None),
                    until=getattr(args, "until", None),
                )
            )
        )
        return 0
    from loaders.ops.budgets import RunBudget
    from loaders.ops.run_report import write_run_report

    report = run_rest(
        args.source,
        settings,
        group=getattr(args, "group", None),
        types=args.types,
        force=getattr(args, "force", False),
        since=getattr(args, "since", None),
        until=getattr(args, "until", None),
        progress=args.progress,
        budget=RunBudget.resolve(
            args.source, max_requests=args.max_requests, max_pages=args.max_pages
        ),
    )
    if args.report:
        write_run_report(args.report, report)
    out, err = report_lines(report)
    print("\n".join(out))
    if err:
        print("\n".join(err), file=sys.stderr)
    return report.exit_code


def _run_load_files(args: argparse.Namespace) -> int:
    from loaders.load_files import load_files
    from loaders.settings import LoadSettings

    settings = LoadSettings.resolve(
        duckdb_path=args.warehouse,
        landing_root=args.landing,
        source_system=args.source_system,
        destination=args.destination,
        validation=args.validation,
    )
    report = load_files(args.path, settings, skip_loaded_files=not args.reread)
    run = report.run
    seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
    print(
        f"run {run.run_id} ({settings.source_system}): {run.files_read} files, "
        f"{run.resources_read:,} resources read, {run.resources_landed:,} landed, "
        f"{run.resources_merged:,} new or changed, {run.resources_unchanged:,} unchanged, "
        f"{run.resources_quarantined:,} quarantined in {seconds:.1f} s"
    )
    print(f"warehouse: {settings.duckdb_path}   landing: {settings.landing_root}")
    for resource_type, count in sorted(run.counts_by_type.items()):
        merged = run.merged_by_type.get(resource_type, 0)
        print(f"  {resource_type:<22}{count:>10,} landed{merged:>10,} merged")
    if report.validator is not None:
        print(report.validator.describe())
    for reject in report.rejects:
        print(reject.describe(), file=sys.stderr)
    if report.rejects:
        print(
            "quarantined resources are listed in raw_fhir.quarantine; their original lines are "
            f"in {settings.landing_root}/{settings.source_system}/_quarantine/",
            file=sys.stderr,
        )
    return report.exit_code


def _run_reconcile(args: argparse.Namespace) -> int:
    from loaders.reconcile import report_lines, run_reconcile
    from loaders.settings import LoadSettings

    settings = LoadSettings.resolve(duckdb_path=args.warehouse, landing_root=args.landing)
    report = run_reconcile(
        args.source,
        settings,
        since=args.since,
        until=args.until,
        types=args.types,
        repair_budget=args.repair_budget,
        sweep_deletes=args.sweep_deletes,
    )
    out, err = report_lines(report)
    print("\n".join(out))
    if err:
        print("\n".join(err), file=sys.stderr)
    return report.exit_code


def _run_summary(args: argparse.Namespace) -> int:
    from loaders.settings import LoadSettings
    from loaders.summary import format_summary

    settings = LoadSettings.resolve(duckdb_path=args.warehouse)
    print(format_summary(settings.duckdb_path, args.target_dir))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = _build_parser().parse_args(argv)
    configure_logging(logging.DEBUG if args.verbose else logging.WARNING, args.log_format)
    handlers = {
        "generate": _run_generate,
        "load": _run_load,
        "backfill": _run_rest,
        "summary": _run_summary,
        "export": bulk_cli.run_export,
        **ops_commands.HANDLERS,
        "reconcile": _run_reconcile,
        "replay": replay_cli.run_replay,
        "quarantine": quarantine_cli.run_quarantine,
        "retention": retention_cli.run_retention,
        "share": share_cli.run_share,
    }
    try:
        return handlers[args.command](args)
    except FhirEltError as error:
        print(f"fhir-elt: error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"fhir-elt: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
