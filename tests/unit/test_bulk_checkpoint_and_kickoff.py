"""Bulk Data checkpoints in dlt state, export keys, kick-off requests and source config."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from loaders.bulk.checkpoint import (
    BulkState,
    JobCheckpoint,
    export_key,
    export_merged,
    file_finished,
    job_started,
)
from loaders.bulk.config import BulkSourceConfig, ExportLevel, load_bulk_source_config
from loaders.bulk.kickoff import build_kickoff, kick_off
from loaders.exceptions import ConfigError, MalformedResponseError, RequestRejected
from loaders.http import FhirHttpClient, RetryPolicy
from loaders.warehouse.pipeline import apply_state_update

BASE = "https://ehr.example/fhir"
CONFIG = BulkSourceConfig(name="epic_bulk", base_url=BASE)


def test_export_keys_separate_scopes_types_and_filters() -> None:
    group = replace(CONFIG, level=ExportLevel.GROUP, group_id="g1")
    assert export_key(CONFIG, ()) == "system|*"
    assert export_key(group, ("Patient", "Encounter")) == "group/g1|Encounter,Patient"
    assert export_key(group, ("Encounter", "Patient")) == export_key(
        group, ("Patient", "Encounter")
    )
    filtered = replace(CONFIG, type_filters=("Observation?category=laboratory",))
    assert export_key(filtered, ()).startswith("system|*|")
    assert export_key(filtered, ()) != export_key(CONFIG, ())
    assert export_key(replace(CONFIG, organize_output_by="Patient"), ()) == "system|*"


def test_state_moves_only_as_the_updates_say() -> None:
    state: dict = {}
    job = JobCheckpoint("https://ehr.example/fhir/_bulk/status/j1", "2026-06-01T00:00:00Z", None)
    apply_state_update(state, job_started("system|*", job))
    apply_state_update(state, file_finished("system|*", "k1", 100))
    apply_state_update(state, file_finished("system|*", "k2", 50))
    resumed = BulkState.from_state(state)
    assert resumed.jobs["system|*"].finished == {"k1": 100, "k2": 50}
    assert resumed.jobs["system|*"].status_url.endswith("/j1")
    assert resumed.since == {}
    assert "status_url" not in repr(resumed.jobs["system|*"]), "the URL stays out of reprs"

    for update in export_merged("system|*", "2026-06-01T00:00:05Z", {"files": 2}):
        apply_state_update(state, update)
    done = BulkState.from_state(state)
    assert done.jobs == {}
    assert done.since == {"system|*": "2026-06-01T00:00:05Z"}
    assert done.last["system|*"] == {"files": 2}


def test_unreadable_state_is_treated_as_no_job() -> None:
    state = {"bulk": {"jobs": {"a": None, "b": {"kicked_off_at": "x"}, "c": "junk"}}}
    assert BulkState.from_state(state).jobs == {}
    assert BulkState.from_state({}).since == {}


def test_a_get_kickoff_carries_every_parameter() -> None:
    config = replace(
        CONFIG,
        level=ExportLevel.GROUP,
        group_id="g1",
        type_filters=("Observation?category=laboratory", "Observation?code=a,b"),
        elements=("id", "Patient.gender"),
        allow_partial_manifests=True,
        organize_output_by="Patient",
    )
    request = build_kickoff(config, "2026-01-01T00:00:00Z", ("Patient", "Observation"))
    assert (request.method, request.path, request.body) == ("GET", "Group/g1/$export", None)
    assert request.params == {
        "_outputFormat": "application/fhir+ndjson",
        "_since": "2026-01-01T00:00:00Z",
        "_type": "Patient,Observation",
        "_typeFilter": ["Observation?category=laboratory", "Observation?code=a,b"],
        "_elements": "id,Patient.gender",
        "allowPartialManifests": "true",
        "organizeOutputBy": "Patient",
    }


def test_patients_force_a_post_with_a_parameters_body() -> None:
    config = replace(CONFIG, level=ExportLevel.PATIENT, patients=("Patient/p1", "Patient/p2"))
    request = build_kickoff(config, None, ())
    assert (request.method, request.path) == ("POST", "Patient/$export")
    assert request.body is not None
    assert {"name": "patient", "valueReference": {"reference": "Patient/p2"}} in request.body[
        "parameter"
    ]
    assert not any(p["name"] == "_since" for p in request.body["parameter"])


def _client(answer: httpx.Response, seen: list[httpx.Request]) -> FhirHttpClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    return FhirHttpClient(
        BASE,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=1),
        sleep=lambda s: None,
    )


def test_kickoff_sends_prefer_respond_async_and_reads_content_location() -> None:
    seen: list[httpx.Request] = []
    answer = httpx.Response(202, headers={"Content-Location": "_bulk/status/abc"})
    started = kick_off(_client(answer, seen), build_kickoff(CONFIG, None, ("Patient",)))
    assert started.status_url == f"{BASE}/_bulk/status/abc"
    [request] = seen
    assert request.headers["Prefer"] == "respond-async"
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.url.path == "/fhir/$export"

    seen.clear()
    post = replace(CONFIG, kickoff_method="post")
    kick_off(_client(answer, seen), build_kickoff(post, None, ()))
    assert seen[0].method == "POST"
    assert seen[0].headers["Content-Type"] == "application/fhir+json"


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (httpx.Response(202), MalformedResponseError, "without a Content-Location"),
        (httpx.Response(200, json={}), MalformedResponseError, "expected 202"),
        (
            httpx.Response(
                400,
                json={
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "x"}],
                },
            ),
            RequestRejected,
            "not-supported",
        ),
    ],
)
def test_kickoff_failures_are_clear(answer, error, message) -> None:
    with pytest.raises(error, match=message):
        kick_off(_client(answer, []), build_kickoff(CONFIG, None, ()))


def test_config_is_read_through_dlt_with_checks(monkeypatch) -> None:
    prefix = "SOURCES__FHIR_BULK__EPIC_BULK__"
    monkeypatch.setenv(prefix + "BASE_URL", BASE)
    monkeypatch.setenv(prefix + "LEVEL", "group")
    monkeypatch.setenv(prefix + "GROUP_ID", "pop-1")
    monkeypatch.setenv(prefix + "TYPES", "Patient,Encounter")
    monkeypatch.setenv(prefix + "MAX_POLL_INTERVAL_SECONDS", "120")
    monkeypatch.setenv(prefix + "ALLOW_PARTIAL_MANIFESTS", "true")
    config = load_bulk_source_config("epic_bulk")
    assert (config.level, config.group_id, config.types) == (
        ExportLevel.GROUP,
        "pop-1",
        ("Patient", "Encounter"),
    )
    assert config.max_poll_interval_seconds == 120 and config.allow_partial_manifests
    monkeypatch.setenv(prefix + "TYPES", "Patient,Unicorn")
    with pytest.raises(ConfigError, match="'Unicorn' is not a FHIR R4 resource type"):
        load_bulk_source_config("epic_bulk")
    monkeypatch.delenv(prefix + "TYPES")
    monkeypatch.delenv(prefix + "GROUP_ID")
    with pytest.raises(ConfigError, match="group_id is needed"):
        load_bulk_source_config("epic_bulk")


def test_auth_config_names_the_bulk_keys_and_never_the_secret(monkeypatch) -> None:
    prefix = "SOURCES__FHIR_BULK__EPIC_BULK__"
    monkeypatch.setenv(prefix + "BASE_URL", BASE)
    monkeypatch.setenv(prefix + "AUTH", "basic")
    with pytest.raises(ConfigError, match=r"sources\.fhir_bulk\.epic_bulk\.auth must be one of"):
        load_bulk_source_config("epic_bulk")
    monkeypatch.setenv(prefix + "AUTH", "client_credentials")
    monkeypatch.setenv(prefix + "CLIENT_ID", "fhir-elt")
    with pytest.raises(
        ConfigError, match=r"needs sources\.fhir_bulk\.epic_bulk\.credentials\.client_secret"
    ):
        load_bulk_source_config("epic_bulk")
    monkeypatch.setenv(prefix + "CREDENTIALS__CLIENT_SECRET", "s3cret-value")
    config = load_bulk_source_config("epic_bulk")
    assert (config.auth.client_id, config.auth.credential_client_id) == ("fhir-elt", "fhir-elt")
    assert "s3cret-value" not in repr(config)
