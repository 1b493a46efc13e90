"""The canary run: every fhir-elt path a patient's data can leak through, on planted identities.

In one work directory (its own warehouse, landing zone, dlt pipelines, dbt target and log
directories) the run:

1. generates a small synthetic dataset (``loaders.synthetic``, what ``fhir-elt generate``
   runs) and plants a canary identity into every Patient (name, MRN, SSN, birth date, address,
   phone); the file feed also gets two patients sharing one MRN (a dbt data-quality rule warns)
   and a Patient that is invalid FHIR (quarantined under ``--validation full``), the REST server
   a Patient whose elements drift (an unknown element and a wrong datatype, both carrying
   canary values);
2. loads the files (``load files --validation full``), then starts the local FHIR test server
   with 429s, 5xx (the token endpoint's included), connection resets and a malformed page
   switched on and loads from it with SMART Backend Services (private key JWT), with a client
   secret, with a wrong client secret (an authentication error), and as a Bulk Data export;
   runs ``reconcile``, ``doctor``, ``quarantine list`` and ``show`` (and ``show --payload``,
   which prints the quarantined bytes by design: the scan's positive control for command
   output);
3. runs ``dbt build`` (a data rule warns on the shared MRN, the reconciliation rule fails on the
   type the malformed page stopped) and ``dbt docs generate`` in child
   processes with the target and log paths inside the work directory and an ``as_of`` a year
   after the loads (so freshness alerts open), then ``status`` and ``alerts``, which posts to
   a local webhook listener.

Every fhir-elt command runs as a child process with DEBUG logging as JSON lines; stdout and
stderr are kept for the scan. The run never asserts: :mod:`tests.reliability.phi_scan` judges.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from loaders.synthetic import GenerateOptions, generate
from tests.fhir_server import FhirTestServer, RegisteredClient, Scenario, ServerAuth
from tests.fhir_server.auth import jwk_set, make_rsa_key
from tests.fhir_server.ndjson import load_ndjson_dir
from tests.reliability.phi_needles import (
    CanaryIdentity,
    Needles,
    canary_identity,
    plant,
    secret_needles,
)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PATIENTS = 5
SEED = 20261206
AS_OF = "2026-06-01T00:00:00+00:00"  # what the generated data is current as of
DBT_AS_OF = "2027-06-01 00:00:00"  # dbt's "now": a year after the loads, so freshness alerts open
CLIENT_ID = "fhir-elt-canary"
INVALID_INDEX = 91  # the canary in an invalid Patient (quarantined)
DRIFTED_INDEX = 92  # the canary in a drifted Patient (REST server only)
COMMAND_TIMEOUT = 180
PAYLOAD_SHOW = "quarantine show --payload"  # the one command that prints PHI by design
# The client-secret loads and the reconciliation read only these (time; the SMART load and the
# Bulk export read every type).
FEW_TYPES = ("--types", "Patient,Immunization")
SOURCES = {
    "smart": "canary_smart",
    "secret": "canary_secret",
    "bad_secret": "canary_bad_secret",
    "bulk": "canary_bulk",
}


@dataclass(frozen=True)
class Capture:
    """One command's outcome: what it printed and how it ended."""

    name: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class WorkPaths:
    """Where one canary run keeps everything."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse" / "fhir.duckdb"

    @property
    def pipelines(self) -> Path:
        return self.warehouse.parent / "dlt_pipelines"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def dbt_target(self) -> Path:
        return self.root / "dbt_target"

    @property
    def dbt_alerts_target(self) -> Path:
        return self.root / "dbt_target_alerts"

    @property
    def dbt_logs(self) -> Path:
        return self.root / "dbt_logs"

    @property
    def outputs(self) -> Path:
        """Captured stdout/stderr of every command and the webhook bodies."""
        return self.root / "captured"


@dataclass
class CanaryRun:
    """What the canary run produced, for the scan."""

    paths: WorkPaths
    needles: Needles
    identities: list[CanaryIdentity]
    captures: list[Capture] = field(default_factory=list)
    webhook_bodies: list[bytes] = field(default_factory=list)
    tokens_issued: int = 0

    def capture(self, name: str) -> Capture:
        """The capture of the command called ``name``."""
        return next(c for c in self.captures if c.name == name)


# -- data ----------------------------------------------------------------------------------


def _read_patients(data: Path) -> list[dict[str, Any]]:
    text = (data / "Patient.ndjson").read_text()
    return [json.loads(line) for line in text.splitlines() if line]


def _write_patients(data: Path, patients: list[dict[str, Any]]) -> None:
    lines = [json.dumps(resource) for resource in patients]
    (data / "Patient.ndjson").write_text("\n".join(lines) + "\n")


def _plant_canaries(data: Path) -> list[CanaryIdentity]:
    """Plant a canary identity into every generated Patient."""
    patients = _read_patients(data)
    identities = [canary_identity(index) for index in range(len(patients))]
    for resource, identity in zip(patients, identities, strict=True):
        plant(resource, identity)
    _write_patients(data, patients)
    return identities


def _file_feed_defects(data: Path, identities: list[CanaryIdentity]) -> CanaryIdentity:
    """The file feed only: the second patient takes the first one's MRN (the dbt rule
    ``dq_duplicate_mrn`` warns: one duplicate in one source stays under its error rate), and a
    Patient that is invalid FHIR R4B is added (quarantined under ``--validation full``)."""
    patients = _read_patients(data)
    plant(patients[1], identities[1], mrn=identities[0].mrn)
    invalid_identity = canary_identity(INVALID_INDEX)
    invalid: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "canary-invalid",
        "meta": {"versionId": "1", "lastUpdated": "2026-05-30T10:00:00+00:00"},
        "gender": 123,  # not a code: R4B validation refuses it, so it is quarantined
    }
    plant(invalid, invalid_identity)
    _write_patients(data, [*patients, invalid])
    return invalid_identity


def _drifted_patient(template: dict[str, Any]) -> tuple[dict[str, Any], CanaryIdentity]:
    identity = canary_identity(DRIFTED_INDEX)
    drifted = json.loads(json.dumps(template))
    drifted["id"] = "canary-drifted"
    plant(drifted, identity)
    drifted["nickname"] = f"{identity.given} {identity.family}"  # not an R4 element
    drifted["multipleBirthInteger"] = identity.address_line  # a string where R4 has an integer
    return drifted, identity


# -- the webhook listener ------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    server: _ReceiverServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _ReceiverServer(ThreadingHTTPServer):
    bodies: list[bytes]


@contextmanager
def _webhook_listener() -> Iterator[_ReceiverServer]:
    server = _ReceiverServer(("127.0.0.1", 0), _Receiver)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- commands ------------------------------------------------------------------------------


class _Runner:
    """Runs fhir-elt and dbt as child processes with the run's environment; keeps the output."""

    def __init__(self, run: CanaryRun, env: dict[str, str]) -> None:
        self.run = run
        self.env = env

    def fhir_elt(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> Capture:
        command = [str(BIN / "fhir-elt"), "-v", "--log-format", "json", *args]
        return self._run(name, command, extra_env)

    def dbt(self, name: str, *args: str) -> Capture:
        paths = self.run.paths
        command = [
            str(BIN / "dbt"),
            *args,
            "--project-dir",
            str(REPO),
            "--target-path",
            str(paths.dbt_target),
            "--log-path",
            str(paths.dbt_logs),
        ]
        return self._run(name, command, None)

    def _run(self, name: str, command: Sequence[str], extra_env: dict[str, str] | None) -> Capture:
        started = time.monotonic()
        result = subprocess.run(
            list(command),
            cwd=REPO,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        capture = Capture(
            name, result.returncode, result.stdout, result.stderr, time.monotonic() - started
        )
        self.run.captures.append(capture)
        outputs = self.run.paths.outputs
        outputs.mkdir(parents=True, exist_ok=True)
        (outputs / f"{len(self.run.captures):02d}-{name}.out").write_text(capture.stdout)
        (outputs / f"{len(self.run.captures):02d}-{name}.err").write_text(capture.stderr)
        return capture


def _base_env(paths: WorkPaths) -> dict[str, str]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SOURCES__", "FHIR_ELT_", "DBT_"))
    }
    return {
        **inherited,
        "FHIR_ELT_DUCKDB_PATH": str(paths.warehouse),
        "FHIR_ELT_LANDING_ROOT": str(paths.landing),
        "FHIR_ELT_LOG_FORMAT": "json",
        "DBT_PROFILES_DIR": str(REPO / "profiles"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_LOG_PATH": str(paths.dbt_logs),
        "PYTHONUNBUFFERED": "1",
        # The drifted canary's unknown element loads and is recorded (the default for an
        # unknown element is fail: the page would not merge and its canaries never land).
        "FHIR_ELT_DRIFT_POLICY": "Patient.nickname=warn",
    }


def _fast_http(prefix: str) -> dict[str, str]:
    return {
        prefix + "RETRY_BASE_DELAY": "0.01",
        prefix + "RETRY_MAX_DELAY": "0.05",
        prefix + "MAX_ELAPSED_SECONDS": "60",
        prefix + "CONNECT_TIMEOUT": "2",
        prefix + "READ_TIMEOUT": "5",
    }


def _source_env(
    server: FhirTestServer, *, private_pem: str, kid: str, secret: str, wrong_secret: str
) -> dict[str, str]:
    env: dict[str, str] = {}
    smart = f"SOURCES__FHIR_REST__{SOURCES['smart'].upper()}__"
    bulk = f"SOURCES__FHIR_BULK__{SOURCES['bulk'].upper()}__"
    for prefix in (smart, bulk):
        env |= {
            prefix + "BASE_URL": server.base_url,
            prefix + "AUTH": "smart_backend",
            prefix + "TOKEN_URL": server.token_url,
            prefix + "CLIENT_ID": CLIENT_ID,
            prefix + "KID": kid,
            prefix + "CREDENTIALS__PRIVATE_KEY": private_pem,
            **_fast_http(prefix),
        }
    env[smart + "PAGE_SIZE"] = "20"
    env |= {
        bulk + "MIN_POLL_INTERVAL_SECONDS": "0",
        bulk + "DEFAULT_POLL_INTERVAL_SECONDS": "0.05",
        bulk + "MAX_POLL_INTERVAL_SECONDS": "0.2",
        bulk + "MAX_POLL_WAIT_SECONDS": "30",
    }
    for name, value in (("secret", secret), ("bad_secret", wrong_secret)):
        prefix = f"SOURCES__FHIR_REST__{SOURCES[name].upper()}__"
        env |= {
            prefix + "BASE_URL": server.base_url,
            prefix + "AUTH": "client_credentials",
            prefix + "TOKEN_URL": server.token_url,
            prefix + "CLIENT_ID": CLIENT_ID,
            prefix + "CREDENTIALS__CLIENT_SECRET": value,
            prefix + "PAGE_SIZE": "50",
            **_fast_http(prefix),
        }
    return env


def _quarantine_id(listing: str) -> str | None:
    match = re.search(r"^([0-9a-f]{12})\b", listing, re.MULTILINE)
    return match.group(1) if match else None


def canary_run(work_dir: Path) -> CanaryRun:
    """Run every command on planted canaries in ``work_dir`` (created; should be empty)."""
    paths = WorkPaths(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    key = make_rsa_key("canary-k1")
    secret = "cs-" + secrets.token_urlsafe(24)
    wrong_secret = "cs-wrong-" + secrets.token_urlsafe(24)
    run = CanaryRun(paths, Needles.of((), ()), [])
    runner = _Runner(run, _base_env(paths))

    generate(
        GenerateOptions(
            patients=PATIENTS, seed=SEED, out=paths.data, as_of=datetime.fromisoformat(AS_OF)
        )
    )
    identities = _plant_canaries(paths.data)
    resources = load_ndjson_dir(paths.data)  # what the test server holds (before the defects)
    identities.append(_file_feed_defects(paths.data, identities))
    runner.fhir_elt(
        "load files",
        "load",
        "files",
        str(paths.data),
        "--source-system",
        "canary_files",
        "--validation",
        "full",
    )

    template = next(r for r in resources if r["resourceType"] == "Patient")
    drifted, drifted_identity = _drifted_patient(template)
    identities.append(drifted_identity)
    auth = ServerAuth(
        required=True,
        clients={CLIENT_ID: RegisteredClient(secret=secret, jwks=jwk_set(key))},
    )
    scenario = Scenario(
        seed=9,
        fraction_429=0.04,
        fraction_5xx=0.08,
        fraction_reset=0.04,
        fraction_token_5xx=0.3,  # token requests are retried too (the secret is in their body)
        retry_after_seconds=0,
        malformed_page=("Immunization", 1),
    )
    with FhirTestServer([*resources, drifted], scenario=scenario, auth=auth) as server:
        runner.env |= _source_env(
            server,
            private_pem=key.private_pem,
            kid=key.kid,
            secret=secret,
            wrong_secret=wrong_secret,
        )
        runner.fhir_elt("load rest (smart)", "load", "rest", "--source", SOURCES["smart"])
        for name in ("secret", "bad_secret"):
            runner.fhir_elt(
                f"load rest ({name})", "load", "rest", "--source", SOURCES[name], *FEW_TYPES
            )
        runner.fhir_elt("load bulk", "load", "bulk", "--source", SOURCES["bulk"])
        runner.fhir_elt("reconcile", "reconcile", "--source", SOURCES["smart"], *FEW_TYPES)
        runner.fhir_elt("doctor", "doctor", "--source", SOURCES["smart"])
        issued = server.tokens.issued_tokens()
    run.tokens_issued = len(issued)

    listing = runner.fhir_elt("quarantine list", "quarantine", "list")
    quarantined = _quarantine_id(listing.stdout)
    if quarantined:
        runner.fhir_elt("quarantine show", "quarantine", "show", quarantined)
        # prints the original bytes on purpose: the scan's positive control for command output
        runner.fhir_elt(PAYLOAD_SHOW, "quarantine", "show", quarantined, "--payload")

    dbt_vars = json.dumps({"as_of": DBT_AS_OF})
    runner.dbt("dbt build", "build", "--vars", dbt_vars)
    runner.dbt("dbt docs generate", "docs", "generate", "--vars", dbt_vars, "--no-compile")
    runner.fhir_elt("status", "status")
    # alerts runs dbt itself: in a copy of the target (its partial parse spares a full parse),
    # so the build's artefacts stay as they were for the scan
    shutil.copytree(paths.dbt_target, paths.dbt_alerts_target)
    with _webhook_listener() as listener:
        runner.fhir_elt(
            "alerts",
            "alerts",
            "--project-dir",
            str(REPO),
            "--target-path",
            str(paths.dbt_alerts_target),
            "--vars",
            dbt_vars,
            "--json",
            str(paths.outputs / "alerts.json"),
            "--webhook-url",
            f"http://127.0.0.1:{listener.server_address[1]}/hook",
        )
        run.webhook_bodies = list(listener.bodies)
    for index, body in enumerate(run.webhook_bodies):
        (paths.outputs / f"webhook-{index}.json").write_bytes(body)

    run.identities = identities
    canaries = [needle for identity in identities for needle in identity.needles()]
    run.needles = Needles.of(
        canaries,
        secret_needles(
            client_secrets=[(CLIENT_ID, secret), (CLIENT_ID, wrong_secret)],
            private_keys=[key.private_pem],
            tokens=issued,
        ),
    )
    return run
