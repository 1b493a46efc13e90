"""REST extraction against the local FHIR test server, one failure mode per test.

Each test loads through the real client and compares the warehouse with the server's truth:
zero lost, zero duplicated, the cursor where it should be, and the outcome a person expects.
"""

from __future__ import annotations

import time
from datetime import datetime

import duckdb
import pytest

from loaders.rest.config import Strategy, TypeConfig
from loaders.settings import LoadSettings
from tests.fhir_server import FhirTestServer, Scenario
from tests.integration.rest_support import compare, cursors, rest_config, run


def test_clean_sync_loads_everything_and_sets_every_cursor(
    fhir_server: FhirTestServer, settings: LoadSettings
) -> None:
    report = run(settings, rest_config(fhir_server.base_url))

    assert report.exit_code == 0
    assert compare(settings, fhir_server.truth()).exact
    committed = cursors(settings)
    assert set(committed) == {o.resource_type for o in report.outcomes.values()}
    server_now = fhir_server.now()
    for value in committed.values():
        cursor = datetime.fromisoformat(value.replace("Z", "+00:00"))
        assert abs((server_now - cursor).total_seconds()) < 30


def test_second_run_pulls_only_the_overlap_and_picks_up_edits(
    fhir_server: FhirTestServer, settings: LoadSettings
) -> None:
    config = rest_config(fhir_server.base_url)
    run(settings, config)
    patient_id = next(iter(fhir_server.resources("Patient")))["id"]
    fhir_server.update("Patient", patient_id, lambda r: r.update(gender="other"))
    before = len(fhir_server.request_log)
    # Window ends come from the server's Date header (whole seconds): an edit stamped within
    # the second a run starts in is left to the next run, whose overlap covers it.
    time.sleep(1.1)

    report = run(settings, config)

    assert report.exit_code == 0
    assert report.run.resources_merged == 1
    assert compare(settings, fhir_server.truth()).exact
    searches = [r.query for r in fhir_server.request_log[before:] if "_count=50" in r.query]
    # Every type searched from its cursor minus the overlap, not from the beginning.
    assert len(searches) == 12
    assert all("_lastUpdated=gt" in query for query in searches)


@pytest.mark.parametrize(
    "scenario",
    [
        # Retry-After comes in whole seconds and is honoured; "0" keeps most runs fast, and the
        # HTTP-date run (1 s) sees only a few.
        pytest.param(Scenario(seed=3, fraction_429=0.1, retry_after_seconds=0), id="429"),
        pytest.param(
            Scenario(seed=3, fraction_429=0.03, retry_after_http_date=True), id="429-http-date"
        ),
        pytest.param(Scenario(seed=4, fraction_5xx=0.1, retry_after_seconds=0), id="5xx"),
        pytest.param(Scenario(seed=5, fraction_reset=0.15), id="connection-resets"),
    ],
)
def test_transient_faults_lose_and_duplicate_nothing(
    fhir_server_factory, settings: LoadSettings, scenario: Scenario
) -> None:
    server = fhir_server_factory(scenario=scenario)

    report = run(settings, rest_config(server.base_url, page_size=25))

    faults = server.stats.sent_429 + server.stats.sent_5xx + server.stats.resets
    assert faults > 0, "the scenario injected no fault; the test would prove nothing"
    assert report.exit_code == 0, report.outcomes
    assert compare(settings, server.truth()).exact
    retried = [r for r in report.requests if r.outcome == "retry"]
    assert len(retried) >= faults - 1


def test_a_burst_of_5xx_is_outlasted(fhir_server_factory, settings: LoadSettings) -> None:
    server = fhir_server_factory(scenario=Scenario(retry_after_seconds=0.01))
    server.scenario.burst_5xx(6, status=502)

    report = run(settings, rest_config(server.base_url, concurrency=1))

    assert server.stats.sent_5xx == 6
    assert report.exit_code == 0
    assert compare(settings, server.truth()).exact


def test_read_timeouts_on_a_slow_link_are_retried(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(scenario=Scenario())
    # 2 s against a 1 s read timeout: far enough apart that a loaded CI machine's ordinary
    # responses (milliseconds here) never time out too
    server.scenario.slow_next(3, 2.0)

    report = run(settings, rest_config(server.base_url, read_timeout=1.0, concurrency=1))

    assert report.exit_code == 0
    timeouts = [r for r in report.requests if r.error_class == "ReadTimeout"]
    assert len(timeouts) == 3
    assert compare(settings, server.truth()).exact


def test_retries_exhausted_fail_the_type_clearly_and_keep_its_cursor(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(scenario=Scenario(fraction_5xx=1.0, retry_after_seconds=0.01))

    report = run(settings, rest_config(server.base_url, max_attempts=3), types="Patient")

    assert report.exit_code == 1
    outcome = report.outcomes["Patient"]
    assert outcome.status == "failed"
    assert "gave up after 3 attempts" in (outcome.error or "")
    assert cursors(settings) == {}


def test_resources_updated_while_paging_are_not_skipped(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(scenario=Scenario(update_while_paging=2))
    config = rest_config(server.base_url, page_size=25)
    report = run(settings, config, types="Observation")

    assert server.stats.updates_while_paging > 0
    assert report.outcomes["Observation"].repages >= 1
    cursor = datetime.fromisoformat(cursors(settings)["Observation"].replace("Z", "+00:00"))
    truth = server.truth("Observation")
    within = {
        key: value
        for key, value in truth.items()
        if datetime.fromisoformat(value[1].replace("Z", "+00:00")) <= cursor
    }
    comparison = compare(settings, within)
    assert not comparison.lost and not comparison.stale and not comparison.duplicated
    # Updated resources moved past the window; the next run (no more updates) gets them.
    server.scenario.update_while_paging = 0
    run(settings, config, types="Observation")
    assert compare(settings, server.truth("Observation")).exact


def test_without_window_verification_shifted_pages_do_lose_resources(
    fhir_server_factory, settings: LoadSettings
) -> None:
    """The control for the test above: naive paging misses resources in this scenario."""
    server = fhir_server_factory(scenario=Scenario(update_while_paging=2))
    report = run(
        settings,
        rest_config(server.base_url, page_size=25, verify_windows=False),
        types="Observation",
    )
    cursor = datetime.fromisoformat(cursors(settings)["Observation"].replace("Z", "+00:00"))
    within = {
        key: value
        for key, value in server.truth("Observation").items()
        if datetime.fromisoformat(value[1].replace("Z", "+00:00")) <= cursor
    }
    assert report.exit_code == 0
    assert compare(settings, within).lost


def test_a_renamed_field_stops_its_type_before_the_merge(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(
        scenario=Scenario(rename_field=("Patient", "birthDate", "birth_date", 1))
    )

    report = run(settings, rest_config(server.base_url))

    assert report.exit_code == 1
    patient = report.outcomes["Patient"]
    assert patient.status == "failed"
    assert "Patient search page 1" in patient.error and "birth_date" in patient.error
    assert "Patient" not in cursors(settings)
    others = {t: o.status for t, o in report.outcomes.items() if t != "Patient"}
    assert set(others.values()) == {"succeeded"}
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        (patients,) = connection.execute("select count(*) from raw_fhir.patient").fetchone()
    assert patients == 0


def test_a_malformed_page_fails_its_type_and_keeps_what_was_merged(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(scenario=Scenario(malformed_page=("Observation", 2)))

    report = run(settings, rest_config(server.base_url))

    observation = report.outcomes["Observation"]
    assert report.exit_code == 1 and observation.status == "failed"
    assert "not valid JSON" in observation.error
    assert "Observation" not in cursors(settings)
    truth = server.truth()
    comparison = compare(settings, truth)
    assert not comparison.duplicated
    assert {key[0] for key in comparison.lost} == {"Observation"}
    # The fix on the server side, then a rerun: everything, once.
    server.scenario.malformed_page = None
    assert run(settings, rest_config(server.base_url)).exit_code == 0
    assert compare(settings, truth).exact


def test_quirky_servers_are_tolerated(fhir_server_factory, settings: LoadSettings) -> None:
    server = fhir_server_factory(
        scenario=Scenario(
            ignore_count=True,
            default_page_size=30,
            page_size_changes={2: 7, 4: 40},
            outcome_entry_every_n_pages=2,
            include_entries=True,
            supports_sort=False,
        )
    )

    report = run(settings, rest_config(server.base_url, page_size=100))

    assert report.exit_code == 0
    assert compare(settings, server.truth()).exact


def test_the_request_rate_stays_within_the_budget(
    fhir_server_factory, settings: LoadSettings
) -> None:
    limit, period, headroom = 40, 1.0, 0.6
    server = fhir_server_factory(scenario=Scenario(rate_limit=(limit, period)))
    config = rest_config(
        server.base_url, rate_limit=limit, rate_limit_period_seconds=period, headroom=headroom
    )

    report = run(settings, config, types="Observation,Encounter,Condition")

    assert report.exit_code == 0
    assert server.stats.sent_429 == 0
    times = sorted(r.time for r in server.request_log if r.kind == "data")
    assert len(times) >= 10
    achieved = (len(times) - 1) / (times[-1] - times[0]).total_seconds()
    assert achieved <= limit * headroom / period * 1.05


def test_clinical_date_fallback_for_a_server_without_last_updated(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(scenario=Scenario(last_updated_unsupported={"Encounter"}))
    config = rest_config(
        server.base_url,
        types={"Encounter": TypeConfig("Encounter", Strategy.CLINICAL_DATE, "date", 30)},
    )

    first = run(settings, config, types="Encounter")
    assert first.exit_code == 0
    assert compare(settings, server.truth("Encounter")).exact
    encounter_id = next(iter(server.resources("Encounter")))["id"]
    before = len(server.request_log)
    server.add(
        {
            **server.get("Encounter", encounter_id),
            "id": "enc-new-1",
            "period": {"start": server.now().isoformat()},
        }
    )

    second = run(settings, config, types="Encounter")

    assert second.exit_code == 0
    assert compare(settings, server.truth("Encounter")).exact
    queries = [r.query for r in server.request_log[before:] if r.kind == "data"]
    assert queries and all("_lastUpdated" not in q for q in queries)
    assert any("date=gt" in q for q in queries)


def test_full_sweep_costs_nothing_downstream_when_nothing_changed(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(scenario=Scenario(last_updated_unsupported={"Condition"}))
    config = rest_config(
        server.base_url, types={"Condition": TypeConfig("Condition", Strategy.FULL_SWEEP)}
    )
    run(settings, config, types="Condition")

    again = run(settings, config, types="Condition")

    assert again.exit_code == 0
    assert again.run.resources_landed == len(server.truth("Condition"))
    assert again.run.resources_merged == 0
    assert compare(settings, server.truth("Condition")).exact


def test_per_patient_search_for_servers_refusing_system_wide_search(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory(scenario=Scenario())
    config = rest_config(
        server.base_url,
        types={"Immunization": TypeConfig("Immunization", Strategy.PER_PATIENT)},
    )

    report = run(settings, config, types="Patient,Immunization")

    assert report.exit_code == 0
    patient_queries = [r.query for r in server.request_log if r.path.endswith("/Immunization")]
    assert len(patient_queries) == len(server.truth("Patient"))
    assert all("patient=" in q for q in patient_queries)
    assert compare(settings, {**server.truth("Patient"), **server.truth("Immunization")}).exact


def test_a_type_listed_without_last_updated_needs_a_fallback_strategy(
    fhir_server_factory, settings: LoadSettings
) -> None:
    from loaders.exceptions import ConfigError

    server = fhir_server_factory(scenario=Scenario(last_updated_unsupported={"Encounter"}))
    with pytest.raises(ConfigError, match="does not list _lastUpdated"):
        run(settings, rest_config(server.base_url), types="Encounter")
