"""The alert rules (dbt models over operational tables) on crafted data; ``fhir-elt alerts``.

One warehouse is crafted with run_metrics and reconciliation_checks rows that should trip each
rule exactly once, next to near-misses that must not (too little history, a small rise, a
backfill, a repaired reconciliation, a fresh type under a tighter SLA). The alert models are
built with ``dbt build --select staging.ops alerts``; then the CLI reads ``open_alerts``, exits
1 with one line, and posts a payload to a local webhook receiver that must carry no PHI, even
from a row whose run id is a canary. Alerts are views, so once the offending rows are gone the
same command reports none (exit 0) without a rebuild.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from loaders.cli import main
from loaders.ops.metrics import run_metrics_table
from loaders.ops.status import collect_status, format_status
from loaders.warehouse.operational import RECONCILIATION_CHECKS_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
DBT = Path(sys.executable).with_name("dbt")
AS_OF = datetime.fromisoformat("2026-11-22T12:00:00+00:00")
VARS = json.dumps(
    {"as_of": "2026-11-22 12:00:00", "alert_freshness_sla_hours": {"default": 26, "Encounter": 3}}
)
CANARY_RUN_ID = "Patient/8f14e45f 999-12-3456"

EXPECTED = {
    ("no_new_rows", "Observation"),
    ("reject_rate_jump", "Procedure"),
    ("duplicate_rate_jump", "MedicationRequest"),
    ("freshness_gap", "Location"),
    ("freshness_gap", "Encounter"),
    ("freshness_gap", "AllergyIntolerance"),
    ("reconciliation_delta", "Patient"),
}


def _metric(number: int, rtype: str, hours_ago: float, **values: Any) -> dict[str, Any]:
    started = AS_OF - timedelta(hours=hours_ago)
    landed = values.pop("landed", 100)
    merged = values.pop("merged", landed)
    row = {
        "run_id": f"{started:%Y%m%dT%H%M%SZ}-{number:06x}",
        "source_system": "epic",
        "command": values.pop("command", "load rest"),
        "resource_type": rtype,
        "status": values.pop("status", "succeeded"),
        "run_status": "succeeded",
        "started_at": started,
        "finished_at": started + timedelta(minutes=5),
        "duration_seconds": 300.0,
        "requests": 10,
        "retries": 0,
        "http_429": 0,
        "http_5xx": 0,
        "failed_requests": 0,
        "token_refreshes": 0,
        "pages": 2,
        "response_bytes": 1000,
        "resources_received": landed,
        "resources_landed": landed,
        "resources_merged": merged,
        "resources_unchanged": landed - merged,
        "resources_quarantined": values.pop("quarantined", 0),
        "drift_findings": 0,
        "warehouse_seconds": 1.0,
        "stopped_by_budget": False,
    }
    assert not values, values
    return row


def _history(rtype: str, latest: dict[str, Any], earlier: list[dict[str, Any]], start: int):
    """Hourly syncs: ``earlier`` (oldest first) then ``latest`` one hour ago."""
    rows = []
    for index, values in enumerate(earlier):
        rows.append(_metric(start + index, rtype, 1 + len(earlier) - index, **values))
    rows.append(_metric(start + len(earlier), rtype, 0.5, **latest))
    return rows


def _metrics_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # no new rows where history says there should be some (5 of 5 earlier syncs had some)
    rows += _history("Observation", {"landed": 0}, [{"merged": 100}] * 5, 100)
    # near misses: mostly empty history; too little history; a backfill finding nothing
    rows += _history("Condition", {"merged": 0}, [{"merged": 0}] * 4 + [{"merged": 9}], 200)
    rows += _history("Organization", {"merged": 0}, [{"merged": 5}] * 2, 300)
    rows += _history("Patient", {"merged": 50}, [{"merged": 20}] * 4, 400)
    rows.append(_metric(499, "Patient", 0.1, merged=0, landed=0, command="backfill"))
    # reject rate 0.01 -> 0.2 (alert); 0.10 -> 0.15 (no: not twice the baseline)
    rows += _history("Procedure", {"quarantined": 25}, [{"quarantined": 1}] * 4, 500)
    rows += _history("Immunization", {"quarantined": 18}, [{"quarantined": 11}] * 4, 600)
    # duplicate rate 0.1 -> 0.9 (alert)
    rows += _history("MedicationRequest", {"merged": 10}, [{"merged": 90}] * 4, 700)
    # freshness: last success 48 h ago (SLA 26 h); Encounter 5 h ago (SLA 3 h); a type that
    # never succeeded, first tried 30 h ago; Practitioner fresh
    rows.append(_metric(800, "Location", 48))
    rows.append(_metric(801, "Encounter", 5))
    rows.append(_metric(802, "Encounter", 0.2, status="skipped", landed=0))
    rows.append(_metric(803, "AllergyIntolerance", 30, status="failed", landed=0))
    rows.append(_metric(804, "AllergyIntolerance", 1, status="failed", landed=0))
    rows.append(_metric(805, "Practitioner", 2))
    return rows


def _check(run_id: str, rtype: str, status: str, source: int, warehouse: int, hours_ago: float):
    checked = AS_OF - timedelta(hours=hours_ago)
    return {
        "run_id": run_id,
        "source_system": "epic",
        "resource_type": rtype,
        "window_start": None,
        "window_end": checked - timedelta(hours=len(run_id) % 7 + 1),
        "source_count": source,
        "warehouse_count": warehouse,
        "delta": source - warehouse,
        "initial_delta": source - warehouse,
        "ids_compared": False,
        "repaired": status == "repaired",
        "resources_fetched": 0,
        "marked_deleted": 0,
        "status": status,
        "checked_at": checked,
    }


def _reconciliation_rows() -> list[dict[str, Any]]:
    return [
        # Patient's latest reconciliation leaves 5 of 1,000 unresolved (0.5% > 0.1%)
        _check(CANARY_RUN_ID, "Patient", "delta", 1000, 995, 2),
        _check("20261121T000000Z-0000aa", "Patient", "ok", 900, 900, 30),
        # Encounter had a delta once, but its latest run repaired everything
        _check("20261121T000000Z-0000bb", "Encounter", "delta", 500, 400, 30),
        _check("20261122T100000Z-0000cc", "Encounter", "repaired", 600, 600, 2),
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("ops_alerts")
    warehouse = base / "fhir.duckdb"
    metrics = run_metrics_table(_metrics_rows())
    checks = pa.Table.from_pylist(_reconciliation_rows(), RECONCILIATION_CHECKS_SCHEMA)
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("create schema raw_fhir")
        connection.register("metrics_rows", metrics)
        connection.register("check_rows", checks)
        connection.execute("create table raw_fhir.run_metrics as select * from metrics_rows")
        connection.execute(
            "create table raw_fhir.reconciliation_checks as select * from check_rows"
        )
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(ROOT / "profiles"),
        "FHIR_ELT_DUCKDB_PATH": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    target = base / "target"
    result = subprocess.run(
        [
            str(DBT),
            "build",
            "--select",
            "staging.ops",
            "alerts",
            "--indirect-selection",
            "cautious",  # not the project-wide PHI test, whose other parents are not built
            "--vars",
            VARS,
            "--project-dir",
            str(ROOT),
            "--target-path",
            str(target),
            "--log-path",
            str(base / "logs"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    results = json.loads((target / "run_results.json").read_text())["results"]
    # The CLI below reuses this target path, so dbt's partial parsing spares it a full parse.
    return {"warehouse": warehouse, "target": target, "results": results}


def _open_alerts(warehouse: Path) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(
            "select alert_kind, resource_type, source_system, run_id, observed_value, threshold, "
            "message from alerts.open_alerts order by 1, 2"
        ).fetchall()


def test_each_rule_fires_exactly_where_planted(built: dict[str, Any]) -> None:
    rows = _open_alerts(built["warehouse"])
    assert {(kind, rtype) for kind, rtype, *_ in rows} == EXPECTED
    assert len(rows) == len(EXPECTED)
    by_key = {(row[0], row[1]): row for row in rows}
    assert by_key[("reject_rate_jump", "Procedure")][4] == pytest.approx(25 / 125)
    assert by_key[("reject_rate_jump", "Procedure")][5] == pytest.approx(1 / 101)
    assert by_key[("freshness_gap", "Encounter")][5] == 3  # the per-type SLA var
    assert by_key[("freshness_gap", "Location")][4] == pytest.approx(48 - 5 / 60, abs=0.01)
    assert "never" in by_key[("freshness_gap", "AllergyIntolerance")][6]
    assert by_key[("reconciliation_delta", "Patient")][4] == 5
    status = collect_status(built["warehouse"])  # `fhir-elt status` lists them too
    assert status.alerts is not None and len(status.alerts) == len(EXPECTED)
    assert "open alerts" in format_status(status)
    warned = {r["unique_id"].split(".")[2] for r in built["results"] if r["status"] == "warn"}
    assert {name for name in warned if name.startswith("has_no_rows")} == {
        "has_no_rows_alert_no_new_rows_",
        "has_no_rows_alert_rate_jumps_",
        "has_no_rows_alert_freshness_gaps_",
        "has_no_rows_alert_reconciliation_deltas_",
    }


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        type(self).bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_cli_fails_with_one_line_and_posts_a_phi_free_payload(
    built: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
) -> None:
    monkeypatch.setenv("FHIR_ELT_DUCKDB_PATH", str(built["warehouse"]))
    monkeypatch.setenv("DBT_PROFILES_DIR", str(ROOT / "profiles"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    args = [
        "alerts",
        "--project-dir",
        str(ROOT),
        "--vars",
        VARS,
        "--target-path",
        str(built["target"]),
    ]
    try:
        code = main(
            [
                *args,
                "--json",
                str(tmp_path / "alerts.json"),
                "--webhook-url",
                f"http://127.0.0.1:{server.server_address[1]}/hook",
            ]
        )
    finally:
        server.shutdown()
        server.server_close()
    captured = capsys.readouterr()

    assert code == 1
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("fhir-elt alerts: 7 open: ")
    assert len(captured.out.strip().splitlines()) == 7
    (body,) = _Receiver.bodies
    payload = json.loads(body)
    assert payload == json.loads((tmp_path / "alerts.json").read_text())
    assert {(a["kind"], a["resource_type"]) for a in payload["fhir_elt"]["alerts"]} == EXPECTED
    patient = next(a for a in payload["fhir_elt"]["alerts"] if a["kind"] == "reconciliation_delta")
    assert patient["run_id"] is None  # the canary run id failed validation
    for text in (body.decode(), captured.out, captured.err):
        assert "999-12-3456" not in text and "8f14e45f" not in text

    # The alerts are views: fix the data and the same command reports none.
    with duckdb.connect(str(built["warehouse"])) as connection:
        connection.execute("delete from raw_fhir.run_metrics")
        connection.execute("delete from raw_fhir.reconciliation_checks")
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == "fhir-elt alerts: none open"
