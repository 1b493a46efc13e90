"""REST extraction: authentication styles and their failures, backfills, and the PHI canary."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import unquote

import duckdb
import pytest

from loaders.rest import sync as sync_module
from loaders.rest.config import AuthConfig, AuthKind
from loaders.settings import LoadSettings
from tests.fhir_server import (
    RegisteredClient,
    Scenario,
    ServerAuth,
    jwk_set,
    make_ec_key,
    make_rsa_key,
)
from tests.integration.rest_support import compare, cursors, rest_config, run

CLIENT = "fhir-elt-test"


def _smart_server(fhir_server_factory, key, scopes=frozenset({"system/*.read"}), **scenario):
    auth = ServerAuth(
        required=True,
        clients={CLIENT: RegisteredClient(jwks=jwk_set(key), scopes=set(scopes))},
    )
    return fhir_server_factory(scenario=Scenario(**scenario), auth=auth)


def _smart_auth(server, key, algorithm: str) -> AuthConfig:
    return AuthConfig(
        kind=AuthKind.SMART_BACKEND,
        token_url=server.token_url,
        client_id=CLIENT,
        scope="system/*.read",
        kid=key.public_jwk["kid"],
        algorithm=algorithm,
        private_key=key.private_pem,
    )


@pytest.mark.parametrize(
    ("make_key", "algorithm"), [(make_rsa_key, "RS384"), (make_ec_key, "ES384")]
)
def test_smart_backend_services_survives_tokens_expiring_mid_run(
    fhir_server_factory, settings: LoadSettings, make_key, algorithm: str
) -> None:
    key = make_key("k1")
    server = _smart_server(fhir_server_factory, key, token_lifetime_seconds=1)
    server.scenario.slow_next(2, 1.2)  # the run outlives its first token, whatever the CPU
    config = rest_config(server.base_url, auth=_smart_auth(server, key, algorithm), page_size=10)

    report = run(settings, config, types="Observation,Encounter")

    assert report.exit_code == 0
    assert server.stats.tokens_issued >= 2, "the run should have outlived its first token"
    assert compare(settings, {**server.truth("Observation"), **server.truth("Encounter")}).exact


def test_client_credentials_with_a_secret(fhir_server_factory, settings: LoadSettings) -> None:
    auth = ServerAuth(required=True, clients={CLIENT: RegisteredClient(secret="s3cret")})
    server = fhir_server_factory(auth=auth)
    config = rest_config(
        server.base_url,
        auth=AuthConfig(
            kind=AuthKind.CLIENT_CREDENTIALS,
            token_url=server.token_url,
            client_id=CLIENT,
            client_secret="s3cret",
        ),
    )

    assert run(settings, config, types="Patient").exit_code == 0
    assert compare(settings, server.truth("Patient")).exact


def test_a_missing_scope_stops_only_that_type_without_a_retry_storm(
    fhir_server_factory, settings: LoadSettings
) -> None:
    key = make_rsa_key("k1")
    server = _smart_server(
        fhir_server_factory, key, scopes={"system/Patient.read", "system/Encounter.read"}
    )
    config = rest_config(
        server.base_url,
        auth=replace(
            _smart_auth(server, key, "RS384"), scope="system/Patient.read system/Encounter.read"
        ),
    )

    report = run(settings, config, types="Patient,Encounter,Observation")

    assert report.exit_code == 1
    observation = report.outcomes["Observation"]
    assert observation.status == "failed" and "403" in observation.error
    assert "system/Observation" in observation.error
    forbidden = [r for r in server.request_log if r.status == 403]
    assert len(forbidden) == 1
    assert {t: o.status for t, o in report.outcomes.items() if t != "Observation"} == {
        "Patient": "succeeded",
        "Encounter": "succeeded",
    }


def test_a_wrong_key_fails_with_a_credential_message(
    fhir_server_factory, settings: LoadSettings
) -> None:
    from loaders.exceptions import AuthenticationError

    registered, other = make_rsa_key("k1"), make_rsa_key("k1")
    server = _smart_server(fhir_server_factory, registered)
    config = rest_config(server.base_url, auth=_smart_auth(server, other, "RS384"))

    with pytest.raises(AuthenticationError, match=CLIENT):
        run(settings, config, types="Patient")
    assert server.stats.tokens_issued == 0


def _all_truth(server) -> dict:
    return server.truth()


def test_backfill_cuts_windows_by_count_and_hands_over_to_the_incremental_cursor(
    fhir_server, settings: LoadSettings
) -> None:
    config = rest_config(fhir_server.base_url, backfill_window_resources=100)
    since = datetime(1900, 1, 1, tzinfo=UTC)

    report = run(settings, config, since=since)

    assert report.exit_code == 0
    assert report.windows_total > 12  # Observation and Encounter needed several windows
    assert report.windows_done == report.windows_total
    assert compare(settings, fhir_server.truth()).exact
    assert set(cursors(settings)) == {o for o in report.outcomes}


def test_backfill_resumes_after_a_crash_without_re_pulling_finished_windows(
    fhir_server, settings: LoadSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = rest_config(fhir_server.base_url, backfill_window_resources=100)
    since = datetime(1900, 1, 1, tzinfo=UTC)
    real_merge = sync_module.merge
    rounds = {"n": 0}

    def crash_in_round_three(*args, **kwargs):
        rounds["n"] += 1
        if rounds["n"] == 3:
            raise KeyboardInterrupt  # the process dies mid-round (as under kill -9)
        return real_merge(*args, **kwargs)

    monkeypatch.setattr(sync_module, "merge", crash_in_round_three)
    with pytest.raises(KeyboardInterrupt):
        run(settings, config, since=since)
    monkeypatch.setattr(sync_module, "merge", real_merge)
    checkpoints = _backfill_done(settings)
    pulled_before = len(fhir_server.request_log)

    resumed = run(settings, config, since=since)

    assert resumed.exit_code == 0
    assert compare(settings, fhir_server.truth()).exact
    assert checkpoints, "two rounds were committed before the crash"
    first_pages = [r for r in fhir_server.request_log[pulled_before:] if "_count=50" in r.query]
    assert first_pages
    for request in first_pages:
        resource_type = request.path.rsplit("/", 1)[-1]
        starts = [p for p in request.query.split("&") if p.startswith("_lastUpdated=gt")]
        checkpoint = checkpoints.get(resource_type)
        if checkpoint is None:
            continue
        start = datetime.fromisoformat(
            unquote(starts[0])[len("_lastUpdated=gt") :].replace("Z", "+00:00")
        )
        # Nothing before the type's checkpoint is pulled again.
        assert start >= datetime.fromisoformat(checkpoint.replace("Z", "+00:00"))


def _backfill_done(settings: LoadSettings) -> dict[str, str]:
    from loaders.warehouse.pipeline import make_pipeline, read_raw_state

    pipeline = make_pipeline(replace(settings, source_system="ehr"))
    backfills = read_raw_state(pipeline).get("rest", {}).get("backfills", {})
    (job,) = backfills.values()
    return dict(job.get("done", {}))


def test_backfill_pauses_on_signal_and_resumes(
    fhir_server, settings: LoadSettings, monkeypatch
) -> None:
    config = rest_config(fhir_server.base_url, backfill_window_resources=100)
    since = datetime(1900, 1, 1, tzinfo=UTC)
    real_merge = sync_module.merge

    def pause_after_first_round(pipeline, settings_, produce):
        real_merge(pipeline, settings_, produce)
        stop.set()

    stop = threading.Event()

    @contextmanager
    def pause_with(_event):
        yield stop

    monkeypatch.setattr(sync_module, "merge", pause_after_first_round)
    monkeypatch.setattr("loaders.rest.commands.pause_on_signals", pause_with)

    paused = run(settings, config, since=since)

    assert paused.exit_code == 4
    assert paused.run.status == "paused"
    monkeypatch.setattr(sync_module, "merge", real_merge)
    stop.clear()
    resumed = run(settings, config, since=since)
    assert resumed.exit_code == 0
    assert compare(settings, fhir_server.truth()).exact


CANARY_NAME = "Zebulon Quackenbush-Canary"
CANARY_MRN = "MRN-CANARY-424242"


def test_planted_names_and_identifiers_never_reach_logs_errors_or_operational_tables(
    fhir_server_factory, synthetic_resources, settings: LoadSettings, caplog
) -> None:
    resources = [dict(r) for r in synthetic_resources]
    for resource in resources:
        if resource["resourceType"] == "Patient":
            resource["name"] = [{"family": CANARY_NAME, "given": [CANARY_NAME]}]
            resource["identifier"] = [
                {"system": "http://hospital.example.org/mrn", "value": CANARY_MRN}
            ]
    server = fhir_server_factory(
        resources=resources,
        scenario=Scenario(seed=9, fraction_5xx=0.1, fraction_reset=0.05, retry_after_seconds=0),
    )
    config = rest_config(server.base_url)
    errors: list[str] = []
    with caplog.at_level(logging.DEBUG):
        run(settings, config, types="Patient,Immunization")
        server.scenario.rename_field = ("Patient", "gender", "sex", 1)
        server.scenario.malformed_page = ("Immunization", 1)
        report = run(settings, config, types="Patient,Immunization", force=True)
        errors.extend(o.error or "" for o in report.outcomes.values())
    per_patient = rest_config(server.base_url, types={})
    run(settings, per_patient, types="Patient")
    texts = [record.getMessage() for record in caplog.records] + errors
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        for table in ("load_runs", "request_log", "landing_manifest"):
            rows = connection.execute(f"select * from raw_fhir.{table}").fetchall()
            texts.extend(str(row) for row in rows)
    patient_ids = [r["id"] for r in resources if r["resourceType"] == "Patient"]
    assert texts
    for text in texts:
        assert CANARY_NAME not in text and CANARY_MRN not in text
        assert not any(patient_id in text for patient_id in patient_ids)
