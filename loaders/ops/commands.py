"""The operator commands of the CLI: ``status``, ``doctor``, ``alerts``, ``notify``, ``storage``.

``loaders/cli.py`` adds these parsers with :func:`add_parsers` and dispatches to
:data:`HANDLERS`; each handler returns the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from loaders.exceptions import ConfigError


def _context(pairs: list[str] | None) -> dict[str, str]:
    context = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--context expects key=value, got {pair!r}")
        context[key] = value
    return context


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the operator commands to the CLI's sub-command parsers."""
    status = commands.add_parser(
        "status", help="freshness and lag per source and type, last runs, open items"
    )
    status.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    status.add_argument("--runs", type=int, default=10, help="how many recent runs (default 10)")

    doctor = commands.add_parser(
        "doctor", help="check a source's configuration, secrets, server, auth and warehouse"
    )
    doctor.add_argument(
        "--source", required=True, help="source name: [sources.fhir_rest.<NAME>] in .dlt config"
    )
    doctor.add_argument("--types", default=None, help="only these types (comma-separated)")
    doctor.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    doctor.add_argument("--landing", type=Path, default=None, help="landing zone directory")
    doctor.add_argument(
        "--dbt-target", default=None, help="also check this dbt target's settings (snowflake)"
    )

    alerts = commands.add_parser(
        "alerts", help="evaluate the dbt alert models; exit 1 and notify when any is open"
    )
    alerts.add_argument("--target", default=None, help="dbt target (default: the profile's)")
    alerts.add_argument("--vars", default=None, help="dbt --vars (YAML), e.g. alert thresholds")
    alerts.add_argument("--project-dir", type=Path, default=Path(), help="dbt project root")
    alerts.add_argument("--target-path", type=Path, default=None, help="dbt target path")
    alerts.add_argument(
        "--build", action="store_true", help="(re)build the alert views first (dbt run)"
    )
    alerts.add_argument("--json", type=Path, default=None, help="also write the payload here")
    alerts.add_argument(
        "--webhook-url",
        default=None,
        help="POST the alerts here (default: FHIR_ELT_ALERT_WEBHOOK_URL; never printed)",
    )
    alerts.add_argument(
        "--context", action="append", metavar="KEY=VALUE", help="context for the payload"
    )

    notify = commands.add_parser("notify", help="post a PHI-free notice to the alert webhook")
    notify.add_argument("message", help="the notice (plain words; redacted before sending)")
    notify.add_argument("--webhook-url", default=None, help="default: FHIR_ELT_ALERT_WEBHOOK_URL")
    notify.add_argument(
        "--context", action="append", metavar="KEY=VALUE", help="context for the payload"
    )

    storage = commands.add_parser(
        "storage", help="copy the landing zone / DuckDB warehouse to or from object storage"
    )
    storage.add_argument("direction", choices=("push", "pull"))
    storage.add_argument("--remote", required=True, help="fsspec URL, e.g. s3://bucket/fhir-elt")
    storage.add_argument(
        "--what",
        default="landing",
        help="comma-separated: landing, warehouse (default: landing)",
    )
    storage.add_argument("--prefix", default="", help="pull only landing files under this")
    storage.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    storage.add_argument("--landing", type=Path, default=None, help="landing zone directory")


def _run_status(args: argparse.Namespace) -> int:
    from loaders.ops.status import collect_status, format_status
    from loaders.settings import LoadSettings

    settings = LoadSettings.resolve(duckdb_path=args.warehouse)
    print(format_status(collect_status(settings.duckdb_path, runs=args.runs)))
    return 0


def _run_doctor(args: argparse.Namespace) -> int:
    from loaders.ops.doctor import diagnose, format_diagnosis
    from loaders.settings import LoadSettings

    settings = LoadSettings.resolve(duckdb_path=args.warehouse, landing_root=args.landing)
    diagnosis = diagnose(args.source, settings, types=args.types, dbt_target=args.dbt_target)
    print(format_diagnosis(diagnosis))
    return 0 if diagnosis.healthy else 1


def _run_alerts(args: argparse.Namespace) -> int:
    from loaders.ops.alerts import DbtOptions, alert_lines, read_open_alerts
    from loaders.ops.webhook import alerts_payload, post, summary_line, webhook_url

    options = DbtOptions(
        project_dir=args.project_dir,
        target=args.target,
        vars=args.vars,
        target_path=args.target_path,
    )
    context = _context(args.context)
    alerts = read_open_alerts(options, build=args.build)
    payload = alerts_payload(alerts, context)
    if args.json:
        args.json.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    if not alerts:
        print(summary_line(alerts))
        return 0
    print("\n".join(alert_lines(alerts)))
    url = webhook_url(args.webhook_url)
    if url:
        problem = post(url, payload)
        if problem:
            print(f"fhir-elt: the alert webhook post failed: {problem}", file=sys.stderr)
    print(summary_line(alerts), file=sys.stderr)
    return 1


def _run_notify(args: argparse.Namespace) -> int:
    from loaders.ops.webhook import notice_payload, post, webhook_url

    url = webhook_url(args.webhook_url)
    if not url:
        raise ConfigError("no webhook: pass --webhook-url or set FHIR_ELT_ALERT_WEBHOOK_URL")
    problem = post(url, notice_payload(args.message, _context(args.context)))
    if problem:
        print(f"fhir-elt: the notice was not delivered: {problem}", file=sys.stderr)
        return 1
    return 0


def _run_storage(args: argparse.Namespace) -> int:
    from loaders.ops import storage
    from loaders.settings import LoadSettings

    settings = LoadSettings.resolve(duckdb_path=args.warehouse, landing_root=args.landing)
    what = {part.strip() for part in args.what.split(",") if part.strip()}
    unknown = what - {"landing", "warehouse"}
    if unknown or not what:
        raise ConfigError(f"--what takes landing and/or warehouse, got {args.what!r}")
    if args.direction == "push":
        if "landing" in what:
            moved = storage.push_landing(settings.landing_root, args.remote)
            print(f"landing: {moved.describe('pushed')}")
        if "warehouse" in what:
            moved = storage.push_warehouse(settings.duckdb_path, args.remote)
            print(f"warehouse: {moved.describe('pushed')}")
    else:
        if "warehouse" in what:
            moved = storage.pull_warehouse(args.remote, settings.duckdb_path)
            print(f"warehouse: {moved.describe('pulled')}")
        if "landing" in what:
            moved = storage.pull_landing(args.remote, settings.landing_root, args.prefix)
            print(f"landing: {moved.describe('pulled')}")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "status": _run_status,
    "doctor": _run_doctor,
    "alerts": _run_alerts,
    "notify": _run_notify,
    "storage": _run_storage,
}
