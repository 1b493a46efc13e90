"""Fault scenarios of Bulk Data export (``load bulk``) against the test server.

Each scenario starts a server over the synthetic data (~920 resources) with one fault, runs
fhir-elt in-process on a fresh work dir until the export is merged (a failing run is followed
by the same command, as the next scheduled run would be), and compares the warehouse with the
server's truth. Setups follow ``tests/integration/test_bulk_export.py``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from loaders.rest.config import AuthConfig, AuthKind
from tests.fhir_server import FhirTestServer, RegisteredClient, Scenario, ServerAuth
from tests.fhir_server.auth import jwk_set, make_rsa_key
from tests.integration.bulk_support import SOURCE, bulk_config, bulk_state
from tests.reliability.matrix import FaultOutcome
from tests.reliability.scenario_support import (
    SUBSET,
    bulk_run,
    start_server,
    truth_of,
    verdict,
    wait_until,
    work_settings,
)

CLIENT = "fhir-elt-reliability-bulk"


def tokens_expiring_mid_export(work_dir: Path) -> FaultOutcome:
    """SMART backend services (RS384 client assertion) with 1 s tokens; every Bulk request is
    slowed down (0.1 s) so the export of five types, its polls and its ~14 file downloads
    outlive its first token (or several), each renewed mid-export."""
    settings = work_settings(work_dir)
    key = make_rsa_key("k1")
    auth = ServerAuth(
        required=True,
        clients={CLIENT: RegisteredClient(jwks=jwk_set(key), scopes={"system/*.read"})},
    )
    scenario = Scenario(
        token_lifetime_seconds=1,
        bulk_resources_per_file=30,
        bulk_polls_before_ready=2,
        bulk_retry_after_seconds=1,
        fraction_slow=1.0,
        slow_seconds=0.1,
    )
    with start_server(scenario=scenario, auth=auth) as server:
        smart = AuthConfig(
            kind=AuthKind.SMART_BACKEND,
            token_url=server.token_url,
            client_id=CLIENT,
            scope="system/*.read",
            kid=key.public_jwk["kid"],
            algorithm="RS384",
            private_key=key.private_pem,
        )
        config = bulk_config(
            server.base_url, auth=smart, download_concurrency=1, max_poll_interval_seconds=0.1
        )
        run = bulk_run(settings, config, types=",".join(SUBSET))
        tokens = server.stats.tokens_issued
        refused = sum(1 for r in server.request_log if r.status == 401)
        files = server.stats.bulk_files_served
        detail = f"{tokens} tokens issued over {files} downloads, {refused} x 401 answered"
        return verdict(
            "tokens expiring mid-export",
            [run],
            truth_of(server, SUBSET),
            settings,
            SOURCE,
            detail,
            fault_seen=tokens >= 2,
        )


def _expire_job(server: FhirTestServer) -> None:
    """Drop every live job on the server (as a server expiring or losing its jobs would)."""
    for job_id in server.bulk_jobs():
        job = server.bulk_routes.jobs.get(job_id)
        if job is not None:
            job.delete()


def job_lost_halfway(work_dir: Path) -> FaultOutcome:
    """An export of five types loses its job on the server halfway through the downloads (the
    files then answer 404): the run stops with a clear error after merging some files, the job
    still checkpointed; the next run finds the job gone, kicks off the same export again (same
    ``_since``) and merges it; what was merged before changes nothing."""
    settings = work_settings(work_dir)
    scenario = Scenario(bulk_resources_per_file=25, fraction_slow=1.0, slow_seconds=0.02)
    with start_server(scenario=scenario) as server:
        config = bulk_config(server.base_url, merge_batch_resources=150, download_concurrency=1)
        types = ",".join(SUBSET)

        # At most two files wait ahead of the merge, and a load commits before the next one
        # takes a file: by the tenth file served the first load (six files) has committed.
        def expire_halfway() -> None:
            if wait_until(lambda: server.stats.bulk_files_served >= 10):
                _expire_job(server)

        watcher = threading.Thread(target=expire_halfway, daemon=True)
        watcher.start()
        first = bulk_run(settings, config, types=types)
        watcher.join(timeout=5)
        state = bulk_state(settings)
        merged_files = sum(len(job.finished) for job in state.jobs.values())
        server.scenario.fraction_slow = 0.0
        second = bulk_run(settings, config, types=types)
        kickoffs = server.stats.bulk_kickoffs
        detail = f"{merged_files} files merged before the job vanished, {kickoffs} kick-offs in all"
        return verdict(
            "Bulk job lost halfway",
            [first, second],
            truth_of(server, SUBSET),
            settings,
            SOURCE,
            detail,
            fault_seen=first.failed and merged_files > 0 and kickoffs == 2,
        )


def polled_into_429(work_dir: Path) -> FaultOutcome:
    """429 while polling: the kick-off gets two 429s (``Retry-After: 0``), then four status
    polls get 429 (``Retry-After: 1``, capped by the client), around three "still working"
    answers."""
    settings = work_settings(work_dir)
    scenario = Scenario(
        retry_after_seconds=0,
        bulk_polls_before_ready=3,
        bulk_429_polls=4,
        bulk_retry_after_seconds=1,
    )
    with start_server(scenario=scenario) as server:
        server.scenario.burst_429(2)
        run = bulk_run(settings, bulk_config(server.base_url, max_poll_interval_seconds=0.05))
        statuses = [r.status for r in server.request_log if r.kind == "bulk_status"]
        polls_429 = statuses.count(429)
        kickoff_429 = sum(
            1 for r in server.request_log if r.kind == "bulk_kickoff" and r.status == 429
        )
        detail = (
            f"{kickoff_429} x 429 on kick-off, {polls_429} x 429 and "
            f"{statuses.count(202)} x 202 status polls"
        )
        return verdict(
            "429 while polling",
            [run],
            server.truth(),
            settings,
            SOURCE,
            detail,
            fault_seen=polls_429 == 4 and kickoff_429 == 2,
        )


SCENARIOS = [tokens_expiring_mid_export, job_lost_halfway, polled_into_429]
