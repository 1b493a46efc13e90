"""``load bulk`` killed with SIGKILL while polling or downloading resumes the same job exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loaders.settings import LoadSettings
from tests.fhir_server import Scenario
from tests.integration.bulk_support import SOURCE, bulk_config, compare, run


@pytest.mark.parametrize(
    ("scenario", "killed_when", "merged_before"),
    [
        pytest.param(
            Scenario(bulk_job_seconds=2.0, bulk_retry_after_seconds=1),
            lambda stats: stats.bulk_polls >= 1,
            0,
            id="while-polling",
        ),
        pytest.param(
            Scenario(bulk_resources_per_file=50, fraction_slow=1.0, slow_seconds=0.1),
            lambda stats: stats.bulk_files_served >= 8,
            # At most two files wait ahead of the landing thread and a load commits before
            # the next one starts, so by the eighth file at least one load has committed.
            1,
            id="while-downloading",
        ),
    ],
)
def test_load_bulk_killed_with_sigkill_resumes_the_same_job(
    fhir_server_factory, settings: LoadSettings, scenario: Scenario, killed_when, merged_before
) -> None:
    server = fhir_server_factory(scenario=scenario)
    prefix = f"SOURCES__FHIR_BULK__{SOURCE.upper()}__"
    env = {
        **os.environ,
        prefix + "BASE_URL": server.base_url,
        prefix + "MIN_POLL_INTERVAL_SECONDS": "0",
        prefix + "MAX_POLL_INTERVAL_SECONDS": "0.2",
        prefix + "MERGE_BATCH_RESOURCES": "100",
        prefix + "DOWNLOAD_CONCURRENCY": "1",
        "PYTHONPATH": str(Path.cwd()),
    }
    command = [
        sys.executable, "-m", "loaders.cli", "load", "bulk", "--source", SOURCE,
        "--warehouse", str(settings.duckdb_path), "--landing", str(settings.landing_root),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not killed_when(server.stats) and process.poll() is None:
        assert time.monotonic() < deadline, "the export never got that far"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the export finished before it was killed"

    server.scenario.fraction_slow = 0.0
    resumed = run(settings, bulk_config(server.base_url))

    assert resumed.exit_code == 0
    assert not resumed.kicked_off, "a new export was started instead of resuming the job"
    assert resumed.files_done_before >= merged_before
    assert server.stats.bulk_kickoffs == 1
    assert compare(settings, server.truth()).exact
