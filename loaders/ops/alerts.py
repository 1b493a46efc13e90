"""``fhir-elt alerts``: read the open alerts the dbt alert models compute, fail loudly on any.

The alert rules live in dbt (``dbt_project/models/alerts``: views over the operational tables,
so they work on DuckDB and Snowflake alike); this module asks dbt for ``open_alerts`` with
``dbt show`` (in-process, against any target), prints them, writes an optional JSON file, and
posts a PHI-free payload to a webhook when one is configured. The command's exit code is 1
when an alert is open, with a one-line message on stderr, so a scheduled job fails visibly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loaders.exceptions import WarehouseError
from loaders.ops.webhook import Alert, describe, safe_alert

logger = logging.getLogger(__name__)

OPEN_ALERTS_MODEL = "open_alerts"
_MAX_ALERTS = 1000


@dataclass(frozen=True, slots=True)
class DbtOptions:
    """Where and how dbt runs: the project root, profiles, target, vars, artefacts."""

    project_dir: Path = Path()
    profiles_dir: Path | None = None
    target: str | None = None
    vars: str | None = None
    target_path: Path | None = None

    def args(self) -> list[str]:
        """The common dbt command-line arguments."""
        args = ["--project-dir", str(self.project_dir)]
        profiles = self.profiles_dir or Path(os.environ.get("DBT_PROFILES_DIR", "profiles"))
        args += ["--profiles-dir", str(profiles)]
        if self.target:
            args += ["--target", self.target]
        if self.vars:
            args += ["--vars", self.vars]
        if self.target_path:
            args += ["--target-path", str(self.target_path)]
        return args


def _invoke(arguments: list[str]) -> Any:
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(arguments)
    if not result.success:
        cause = type(result.exception).__name__ if result.exception else "failed nodes"
        raise WarehouseError(
            f"dbt {arguments[0]} of the alert models did not succeed ({cause}); run "
            "`dbt build --select +open_alerts` to see why"
        )
    return result.result


def read_open_alerts(options: DbtOptions, *, build: bool = False) -> list[Alert]:
    """The rows of ``open_alerts`` (building the alert views first when ``build``).

    Raises:
        WarehouseError: dbt could not build or query the alert models.
    """
    quiet = ["--quiet", "--log-level", "none"]
    if build:
        _invoke(["run", "--select", f"+{OPEN_ALERTS_MODEL}", *options.args(), *quiet])
    result = _invoke(
        [
            "show",
            "--select",
            OPEN_ALERTS_MODEL,
            "--limit",
            str(_MAX_ALERTS),
            *options.args(),
            *quiet,
        ]
    )
    table = result.results[0].agate_table
    names = list(table.column_names)
    alerts = []
    for row in table.rows:
        values = dict(zip(names, row, strict=True))
        alerts.append(
            Alert(
                alert_kind=str(values.get("alert_kind")),
                source_system=str(values.get("source_system")),
                resource_type=str(values.get("resource_type")),
                run_id=values.get("run_id"),
                observed_value=_float(values.get("observed_value")),
                threshold=_float(values.get("threshold")),
                message=str(values.get("message") or ""),
            )
        )
    return alerts


def _float(value: object) -> float | None:
    try:
        return None if value is None else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def alert_lines(alerts: Sequence[Alert]) -> list[str]:
    """One line per alert for stdout, from validated fields (as the webhook payload is)."""
    return [f"  {describe(safe_alert(alert))}" for alert in alerts]
