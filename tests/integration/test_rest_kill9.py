"""A backfill killed with SIGKILL mid-run resumes to an exact warehouse (none lost or twice)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from loaders.settings import LoadSettings
from tests.fhir_server import Scenario
from tests.integration.rest_support import compare, rest_config, run


def test_backfill_killed_with_sigkill_resumes_exactly(
    fhir_server_factory, settings: LoadSettings, tmp_path: Path
) -> None:
    server = fhir_server_factory(scenario=Scenario(fraction_slow=1.0, slow_seconds=0.05))
    prefix = "SOURCES__FHIR_REST__EHR__"
    env = {
        **os.environ,
        prefix + "BASE_URL": server.base_url,
        prefix + "PAGE_SIZE": "50",
        prefix + "BACKFILL_WINDOW_RESOURCES": "100",
        "PYTHONPATH": str(Path.cwd()),
    }
    command = [
        sys.executable, "-m", "loaders.cli", "backfill", "--source", "ehr", "--since", "1900-01-01",
        "--warehouse", str(settings.duckdb_path), "--landing", str(settings.landing_root),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while server.stats.data_requests < 50 and process.poll() is None:
        assert time.monotonic() < deadline, "the backfill never got going"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the backfill finished before it was killed"

    server.scenario.fraction_slow = 0.0
    config = replace(rest_config(server.base_url), backfill_window_resources=100)
    resumed = run(settings, config, since=datetime(1900, 1, 1, tzinfo=UTC))

    assert resumed.exit_code == 0
    assert compare(settings, server.truth()).exact
