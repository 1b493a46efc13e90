"""Bulk Data $export against the local FHIR test server, one scenario per test.

Each test exports through the real client and compares the warehouse with the server's truth:
zero lost, zero duplicated, deletions marked, ``_since`` where it should be, the job deleted
on the server, and the outcome an operator expects.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from loaders.bulk import export as bulk_export
from loaders.bulk.commands import cancel_export, report_lines
from loaders.bulk.status import ExportJobFailed
from loaders.exceptions import ExtractError
from loaders.rest.config import AuthConfig, AuthKind
from loaders.settings import LoadSettings
from tests.fhir_server import FhirTestServer, Scenario
from tests.fhir_server.auth import RegisteredClient, ServerAuth
from tests.fhir_server.search import patient_reference
from tests.integration.bulk_support import (
    SOURCE,
    bulk_config,
    bulk_state,
    compare,
    deleted_keys,
    query,
    run,
)


def _transaction_times(server: FhirTestServer) -> list[datetime]:
    return [job.transaction_time for job in server.bulk_jobs().values()]


def _since_of(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _checks_match_truth(settings: LoadSettings, server: FhirTestServer, run_id: str) -> None:
    """The export's reconciliation rows: per type, the manifest's count == resources read ==
    the server's truth, status ok, window ending at the transactionTime."""
    truth: dict[str, int] = {}
    for resource_type, _ in server.truth():
        truth[resource_type] = truth.get(resource_type, 0) + 1
    rows = query(
        settings,
        "select resource_type, source_count, warehouse_count, status, window_end "
        "from raw_fhir.reconciliation_checks where run_id = ?",
        run_id,
    )
    [transaction_time] = _transaction_times(server)
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == {t: (n, n, "ok") for t, n in truth.items()}
    assert {r[4] for r in rows} == {transaction_time}


def test_clean_system_export_lands_everything_once_and_records_the_run(
    fhir_server: FhirTestServer, settings: LoadSettings
) -> None:
    report = run(settings, bulk_config(fhir_server.base_url))

    assert report.exit_code == 0, report_lines(report)
    assert report.status == "complete"
    assert compare(settings, fhir_server.truth()).exact
    [job] = fhir_server.bulk_jobs().values()
    assert job.state == "deleted", "a merged job is deleted on the server"
    state = bulk_state(settings)
    assert state.jobs == {}
    assert _since_of(state.since["system|*"]) == job.transaction_time
    [(status, command, merged)] = query(
        settings,
        "select status, command, resources_merged from raw_fhir.load_runs where run_id = ?",
        report.run.run_id,
    )
    assert (status, command, merged) == ("succeeded", "load bulk", len(fhir_server.truth()))
    kinds = {
        row[0]
        for row in query(
            settings,
            "select path_template from raw_fhir.request_log where run_id = ?",
            report.run.run_id,
        )
    }
    assert "$export" in kinds
    pages = query(
        settings,
        "select sum(resource_count) from raw_fhir.landing_manifest where run_id = ?",
        report.run.run_id,
    )
    assert pages == [(len(fhir_server.truth()),)]
    downloads = settings.landing_root / SOURCE / "_bulk"
    assert not any(downloads.rglob("*.ndjson")), "downloads are removed once merged"
    _checks_match_truth(settings, fhir_server, report.run.run_id)
    # run metrics: per type what merged; the run's requests in the untyped row
    metrics = query(
        settings,
        "select resource_type, resources_merged, requests from raw_fhir.run_metrics "
        "where run_id = ?",
        report.run.run_id,
    )
    merged = {t: m for t, m, _ in metrics if t != "(untyped)"}
    assert sum(merged.values()) == len(fhir_server.truth())
    [(requests,)] = query(
        settings, "select count(*) from raw_fhir.request_log where run_id = ?", report.run.run_id
    )
    assert sum(r for _, _, r in metrics) == requests > 0


def test_group_export_loads_exactly_the_members_compartments(
    fhir_server_factory, settings: LoadSettings, synthetic_resources
) -> None:
    patients = sorted(r["id"] for r in synthetic_resources if r["resourceType"] == "Patient")
    members = set(patients[:4])
    server = fhir_server_factory(groups={"g1": members})

    report = run(settings, bulk_config(server.base_url), group="g1")

    assert report.exit_code == 0
    expected = {}
    for (rtype, rid), version in server.truth().items():
        resource = server.get(rtype, rid)
        reference = patient_reference(resource) if rtype != "Patient" else f"Patient/{rid}"
        if reference in {f"Patient/{member}" for member in members}:
            expected[(rtype, rid)] = version
    assert 4 < len(expected) < len(server.truth())
    assert compare(settings, expected).exact
    assert set(bulk_state(settings).since) == {"group/g1|*"}
    [kickoff] = [r for r in server.request_log if r.kind == "bulk_kickoff"]
    assert kickoff.path.endswith("/Group/g1/$export")


def test_second_export_starts_at_the_first_transaction_time_and_marks_deletions(
    fhir_server: FhirTestServer, settings: LoadSettings
) -> None:
    config = bulk_config(fhir_server.base_url)
    run(settings, config)
    first_transaction_time = _transaction_times(fhir_server)[0]
    patient_id = fhir_server.resources("Patient")[0]["id"]
    fhir_server.update("Patient", patient_id, lambda r: r.update(gender="other"))
    gone = [r["id"] for r in fhir_server.resources("Observation")[:3]]
    for observation_id in gone:
        fhir_server.delete("Observation", observation_id)
    before = len(fhir_server.request_log)

    report = run(settings, config)

    assert report.exit_code == 0
    [kickoff] = [r for r in fhir_server.request_log[before:] if r.kind == "bulk_kickoff"]
    assert "_since=" in kickoff.query
    assert report.since is not None
    assert _since_of(report.since) == first_transaction_time
    assert report.run.resources_merged == 1 + len(gone)
    assert report.deletions == len(gone)
    assert compare(settings, fhir_server.truth()).exact
    assert deleted_keys(settings) == {("Observation", oid) for oid in gone}
    assert query(
        settings,
        "select resource_type, resource_count from raw_fhir.landing_manifest "
        "where run_id = ? and resource_type = '_deleted'",
        report.run.run_id,
    ) == [("_deleted", len(gone))]

    # A re-created resource (stamped after the tombstone) is live again.
    fhir_server.add(
        {"resourceType": "Observation", "id": gone[0], "status": "final", "code": {"text": "x"}}
    )
    run(settings, config)
    assert compare(settings, fhir_server.truth()).exact
    assert deleted_keys(settings) == {("Observation", oid) for oid in gone[1:]}


def test_slow_job_and_429_polls_are_waited_out_with_retry_after_capped(
    fhir_server_factory, settings: LoadSettings
) -> None:
    # Retry-After as an HTTP-date an hour ahead (seconds are covered by the unit tests).
    server = fhir_server_factory(
        scenario=Scenario(
            bulk_polls_before_ready=3,
            bulk_429_polls=2,
            bulk_retry_after_seconds=3600,  # a server that asks for an hour
            bulk_retry_after_http_date=True,
        )
    )
    started = time.monotonic()

    report = run(settings, bulk_config(server.base_url, max_poll_interval_seconds=0.2))

    assert report.exit_code == 0
    assert time.monotonic() - started < 30, "Retry-After was not capped"
    assert report.polls >= 6  # 2 x 429, 3 x 202, then 200
    statuses = [r.status for r in server.request_log if r.kind == "bulk_status"]
    assert statuses.count(429) == 2 and statuses.count(202) == 3
    assert compare(settings, server.truth()).exact


def test_a_job_still_running_is_left_for_the_next_run_and_resumed(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(
        scenario=Scenario(bulk_polls_before_ready=6, bulk_retry_after_seconds=1)
    )
    config = bulk_config(server.base_url, max_poll_interval_seconds=0.1, max_poll_wait_seconds=0.25)

    first = run(settings, config)

    assert first.exit_code == 4 and first.status == "pending"
    out, _ = report_lines(first)
    assert any("still working" in line for line in out)
    assert set(bulk_state(settings).jobs) == {"system|*"}
    [(status,)] = query(
        settings, "select status from raw_fhir.load_runs where run_id = ?", first.run.run_id
    )
    assert status == "pending"

    resumed = run(settings, replace(config, max_poll_wait_seconds=30))

    assert resumed.exit_code == 0 and not resumed.kicked_off
    assert server.stats.bulk_kickoffs == 1, "the same job was resumed, not a new one started"
    assert compare(settings, server.truth()).exact


class _ShiftedClock:
    """The server clock, jumped forward an hour on demand (tokens then expire server-side)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_token_expiry_during_polling_and_download_is_survived(
    fhir_server_factory, settings: LoadSettings
) -> None:
    clock = _ShiftedClock()
    auth = ServerAuth(
        required=True, clients={"bulk": RegisteredClient(secret="s3cret", scopes={"system/*.read"})}
    )
    server = fhir_server_factory(
        auth=auth,
        clock=clock,
        scenario=Scenario(
            bulk_resources_per_file=40,
            bulk_polls_before_ready=2,
            bulk_retry_after_seconds=1,
            fraction_slow=1.0,
            slow_seconds=0.02,
        ),
    )
    jumps = 0

    def expire_tokens() -> None:
        nonlocal jumps
        deadline = time.monotonic() + 60
        for trigger in (
            lambda: server.stats.bulk_polls >= 1,
            lambda: server.stats.bulk_files_served >= 3,
        ):
            while not trigger() and time.monotonic() < deadline:
                time.sleep(0.005)
            clock.offset += timedelta(hours=1)
            jumps += 1

    watcher = threading.Thread(target=expire_tokens, daemon=True)
    watcher.start()
    config = bulk_config(
        server.base_url,
        auth=AuthConfig(
            kind=AuthKind.CLIENT_CREDENTIALS,
            token_url=server.token_url,
            client_id="bulk",
            client_secret="s3cret",
        ),
        download_concurrency=1,
        max_poll_interval_seconds=0.1,
    )

    report = run(settings, config)
    watcher.join(timeout=5)

    assert jumps == 2
    assert report.exit_code == 0
    refused = {r.kind for r in server.request_log if r.status == 401}
    assert "bulk_file" in refused, "no download met an expired token; the test proves nothing"
    assert server.stats.tokens_issued >= 3
    assert compare(settings, server.truth()).exact


def test_truncated_and_short_downloads_are_downloaded_again(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(
        scenario=Scenario(
            bulk_resources_per_file=100, bulk_truncate_downloads=2, bulk_short_downloads=2
        )
    )

    report = run(settings, bulk_config(server.base_url))

    assert report.exit_code == 0
    assert server.stats.bulk_truncated_downloads == 2
    assert server.stats.bulk_short_downloads == 2
    assert report.downloads == report.files_total + 2  # short files again (resets: in the client)
    assert compare(settings, server.truth()).exact


def test_error_files_are_stored_and_reported_without_their_text(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(scenario=Scenario(bulk_error_outcomes=3))

    report = run(settings, bulk_config(server.base_url))

    assert report.exit_code == 3
    _, err = report_lines(report)
    assert any("3 issue(s) in 1 error file(s)" in line for line in err)
    rows = query(
        settings,
        "select severity, code, file_label from raw_fhir.bulk_errors where run_id = ?",
        report.run.run_id,
    )
    assert sorted(rows) == [("error", "processing", "error 0 (OperationOutcome)")] * 3
    columns = {
        name
        for (name,) in query(
            settings,
            "select column_name from information_schema.columns where table_name = 'bulk_errors'",
        )
    }
    assert "diagnostics" not in columns
    assert compare(settings, server.truth()).exact


def test_a_failed_job_stops_with_the_servers_codes_and_the_next_run_starts_afresh(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(scenario=Scenario(bulk_fail_job=True))
    config = bulk_config(server.base_url)

    with pytest.raises(ExportJobFailed, match=r"export job failed .*exception"):
        run(settings, config)

    assert bulk_state(settings).jobs == {}
    assert query(settings, "select status from raw_fhir.load_runs") == [("failed",)]
    server.scenario.bulk_fail_job = False
    report = run(settings, config)
    assert report.exit_code == 0 and report.kicked_off
    assert compare(settings, server.truth()).exact


def test_partial_manifests_are_followed_page_by_page(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(
        scenario=Scenario(bulk_resources_per_file=50, bulk_manifest_page_size=3)
    )

    report = run(settings, bulk_config(server.base_url, allow_partial_manifests=True))

    assert report.exit_code == 0
    assert report.manifest_pages > 3
    assert server.stats.bulk_manifests == report.manifest_pages - 1
    assert compare(settings, server.truth()).exact


def test_output_organized_by_patient_is_read_type_by_line(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(scenario=Scenario(bulk_resources_per_file=200))

    report = run(settings, bulk_config(server.base_url, organize_output_by="Patient"))

    assert report.exit_code == 0
    assert compare(settings, server.truth()).exact
    assert len(report.run.counts_by_type) > 5


def test_a_crash_while_polling_resumes_the_same_job(
    fhir_server_factory, settings: LoadSettings, monkeypatch
) -> None:
    server = fhir_server_factory(scenario=Scenario(bulk_polls_before_ready=3))
    real = bulk_export.wait_for_complete

    def crash_after_one_poll(client, url, policy, **kwargs):
        client.send("GET", url, answer_statuses=frozenset({202}))
        raise RuntimeError("simulated crash while polling")

    monkeypatch.setattr(bulk_export, "wait_for_complete", crash_after_one_poll)
    config = bulk_config(server.base_url)
    with pytest.raises(RuntimeError):
        run(settings, config)
    monkeypatch.setattr(bulk_export, "wait_for_complete", real)

    report = run(settings, config)

    assert report.exit_code == 0 and not report.kicked_off
    assert server.stats.bulk_kickoffs == 1
    assert compare(settings, server.truth()).exact


def test_a_crash_while_downloading_resumes_after_the_last_merged_file(
    fhir_server_factory, settings: LoadSettings, monkeypatch
) -> None:
    server = fhir_server_factory(scenario=Scenario(bulk_resources_per_file=100))
    real = bulk_export.download_file
    calls = 0

    def crash_on_the_twelfth(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 12:
            raise ExtractError("simulated crash while downloading")
        return real(*args, **kwargs)

    monkeypatch.setattr(bulk_export, "download_file", crash_on_the_twelfth)
    config = bulk_config(server.base_url, merge_batch_resources=400, download_concurrency=1)
    with pytest.raises(ExtractError, match="simulated crash"):
        run(settings, config)
    finished = next(iter(bulk_state(settings).jobs.values())).finished
    assert 0 < len(finished) < 12
    monkeypatch.setattr(bulk_export, "download_file", real)

    report = run(settings, config)

    assert report.exit_code == 0 and not report.kicked_off
    assert report.files_done_before == len(finished)
    assert compare(settings, server.truth()).exact
    [job] = server.bulk_jobs().values()
    assert job.downloads < 2 * report.files_total, "merged files were downloaded again"
    # the files merged before the crash count too
    _checks_match_truth(settings, server, report.run.run_id)


def test_cancel_deletes_the_job_and_the_next_run_starts_a_new_one(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(scenario=Scenario(bulk_polls_before_ready=100))
    config = bulk_config(server.base_url, max_poll_wait_seconds=0.2)
    assert run(settings, config).exit_code == 4

    report = cancel_export(SOURCE, settings, config=config)

    assert report.cancelled == ["system|*"]
    assert [job.state for job in server.bulk_jobs().values()] == ["deleted"]
    assert bulk_state(settings).jobs == {}
    assert cancel_export(SOURCE, settings, config=config).cancelled == []
    server.scenario.bulk_polls_before_ready = 0
    fresh = run(settings, replace(config, max_poll_wait_seconds=30))
    assert fresh.exit_code == 0 and fresh.kicked_off
    assert compare(settings, server.truth()).exact


def test_files_that_need_no_token_are_downloaded_without_it(
    fhir_server_factory, settings: LoadSettings
) -> None:
    auth = ServerAuth(required=True, static_tokens={"tok-bulk": {"system/*.read"}})
    server = fhir_server_factory(auth=auth, scenario=Scenario(bulk_requires_access_token=False))
    config = bulk_config(server.base_url, auth=AuthConfig(kind=AuthKind.STATIC, token="tok-bulk"))

    report = run(settings, config)

    assert report.exit_code == 0
    files = [r for r in server.request_log if r.kind == "bulk_file"]
    assert files and all(r.token_id is None for r in files)
    assert all(r.token_id == "static-0" for r in server.request_log if r.kind == "bulk_kickoff")
    assert compare(settings, server.truth()).exact


def test_the_cli_cancels_nothing_cleanly_when_no_job_is_in_flight(
    fhir_server: FhirTestServer, settings: LoadSettings, monkeypatch, capsys
) -> None:
    from loaders.cli import main

    monkeypatch.setenv(f"SOURCES__FHIR_BULK__{SOURCE.upper()}__BASE_URL", fhir_server.base_url)
    argv = [
        "export", "cancel", "--source", SOURCE,
        "--warehouse", str(settings.duckdb_path), "--landing", str(settings.landing_root),
    ]  # fmt: skip
    code = main(argv)

    assert code == 0
    assert "nothing to cancel" in capsys.readouterr().out
    assert query(settings, "select command, status from raw_fhir.load_runs") == [
        ("export cancel", "succeeded")
    ]
