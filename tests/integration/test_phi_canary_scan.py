"""Issue 9: a canary run leaves no PHI and no secret anywhere outside the restricted places.

The run (``tests/reliability/phi_canary_run.py``) plants canary identities into Patients and
drives every path with them: ``load files`` (a quarantined Patient), REST loads under SMART
Backend Services and a client secret with 429s, 5xx, resets and a malformed page, a wrong
secret, a Bulk export, ``reconcile``, ``quarantine list/show``, ``doctor``, ``dbt build`` (a
data rule warning on a duplicated MRN, a reconciliation rule failing), ``dbt docs generate``,
``status`` and ``alerts`` with a webhook. The scan (``tests/reliability/phi_scan.py``) must
find 0 canaries and 0 secrets in every place scanned, while finding the canaries where they are
allowed (landing pages, raw payloads, the restricted schema, ``quarantine show --payload``): a
scan that finds nothing anywhere would prove nothing. The staging model of patients holds
direct identifiers against DESIGN.md; it is reported as a known finding, not failed here.
"""

from __future__ import annotations

import json

import pytest

from tests.reliability.phi_canary_run import CanaryRun, canary_run
from tests.reliability.phi_scan import PhiScanFigures, scan

pytestmark = pytest.mark.e2e

EXPECTED_PLACES = {
    "fhir-elt stdout (every command)",
    "fhir-elt stderr: JSON log lines at DEBUG",
    "error and exception messages (stdout, stderr, load_runs)",
    "dbt console output (build, docs generate)",
    "warehouse raw_fhir: every table, every column but the payload",
    "warehouse staging: every table and view",
    "warehouse canonical: every table and view",
    "warehouse marts: every table and view",
    "warehouse alerts: every table and view",
    "warehouse operations: every table and view",
    "warehouse snapshots: every table and view",
    "warehouse file bytes (secrets only)",
    "landing manifests and other non-page landing files",
    "dbt target dir dbt_target/: every file",
    "dbt target dir dbt_target_alerts/: every file",
    "dbt log files",
    "alert payload (webhook bodies, alerts --json file)",
    "dlt pipelines dir (state, schemas, load packages)",
}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[CanaryRun, PhiScanFigures]:
    run = canary_run(tmp_path_factory.mktemp("phi_canary"))
    return run, scan(run)


def test_the_run_took_the_paths_it_was_meant_to(scanned) -> None:
    run, figures = scanned
    exits = {name: code for name, code, _ in figures.commands}
    assert exits["load files"] == 3  # the invalid Patient was quarantined, the rest merged
    assert exits["load rest (smart)"] == 1  # the malformed Immunization page stopped that type
    assert exits["load rest (bad_secret)"] == 1
    assert "token endpoint refused client" in run.capture("load rest (bad_secret)").stderr
    assert exits["quarantine show"] == 0
    assert exits["alerts"] == 1 and len(run.webhook_bodies) == 1
    assert figures.tokens_issued >= 3  # SMART, client secret, Bulk
    results = json.loads((run.paths.dbt_target / "run_results.json").read_text())["results"]
    status = {r["unique_id"].split(".")[2]: r["status"] for r in results}
    assert status["dq_duplicate_mrn"] == "warn"  # a data rule reporting defects, on MRNs
    assert status["reconciliation_delta_within_threshold"] == "fail"  # Immunization's delta
    assert status["assert_phi_only_in_restricted_models"] == "pass"
    assert (run.paths.dbt_target / "catalog.json").exists()


def test_every_place_was_scanned_and_holds_no_canary_and_no_secret(scanned) -> None:
    _, figures = scanned
    assert {row.place for row in figures.required} >= EXPECTED_PLACES
    for row in figures.rows:
        assert row.items > 0, f"nothing scanned in {row.place}"
    leaks = [
        f"{row.place}: {spot}"
        for row in figures.required
        for spot in figures.where.get(row.place, ())
    ]
    assert figures.totals.canary_hits == 0 and figures.totals.secret_hits == 0, leaks
    assert sum(row.canary_hits + row.secret_hits for row in figures.required) == 0, leaks


def test_the_scan_finds_canaries_where_they_are_allowed_and_no_secret_there(scanned) -> None:
    _, figures = scanned
    allowed = {row.place: row for row in figures.allowed}
    assert set(allowed) == {
        "raw payload column (raw_fhir, raw_fhir_staging) [allowed]",
        "restricted schema [allowed]",
        "landing pages and Bulk downloads [allowed]",
        "quarantine page store [allowed]",
        "quarantine show --payload output [allowed]",
    }
    for row in figures.allowed:
        kinds = {spot.split(": ")[-1].split(" x")[0] for spot in figures.where[row.place]}
        assert row.canary_hits > 0 and {"name", "mrn", "birth_date", "address"} <= kinds, row
        assert row.secret_hits == 0, row
    for row in figures.known_findings:
        assert row.secret_hits == 0, row


def test_the_needles_match_every_secret_and_canary_case_insensitively(scanned) -> None:
    run, _ = scanned
    kinds = {kind for kind, _ in run.needles.secrets}
    assert kinds == {"client_secret", "private_key", "access_token"}
    for kind, needle in [*run.needles.secrets, *run.needles.canaries]:
        planted = b'{"x": "' + needle.upper() + b'"}'
        found = run.needles.secret_hits(planted) + run.needles.canary_hits(planted)
        assert found[kind] >= 1, kind
    assert {kind for kind, _ in run.needles.canaries} == {
        "name",
        "mrn",
        "ssn",
        "birth_date",
        "address",
        "phone",
    }
