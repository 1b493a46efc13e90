"""PHI-free request descriptions: path templates, query keys, allow-listed values."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

import httpx
import pytest

from loaders.http.request_log import (
    HttpxUrlRedactor,
    RequestRecord,
    describe_request,
    install_httpx_log_redaction,
    path_template,
    query_keys,
    redact_url,
    safe_query_description,
)

BASE = "https://ehr.example/api/FHIR/R4"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"{BASE}/Patient?name=Zebulon", "Patient"),
        (f"{BASE}/Patient/CANARY-123", "Patient/{id}"),
        (f"{BASE}/Patient/CANARY-123/$everything", "Patient/{id}/$everything"),
        (f"{BASE}/Patient/CANARY-123/_history/7", "Patient/{id}/_history/{vid}"),
        (f"{BASE}/Patient/CANARY-123/_history", "Patient/{id}/_history"),
        (f"{BASE}/Patient/CANARY-123/Observation", "Patient/{id}/Observation"),
        (f"{BASE}/Observation/_search", "Observation/_search"),
        (f"{BASE}/Group/g1/$export", "Group/{id}/$export"),
        (f"{BASE}/$export", "$export"),
        (f"{BASE}/metadata", "metadata"),
        (f"{BASE}/.well-known/smart-configuration", ".well-known/smart-configuration"),
        (f"{BASE}?_getpages=abc123&_getpagesoffset=20&_count=50", "{base}"),
        (f"{BASE}/", "{base}"),
        ("Patient/CANARY-123", "Patient/{id}"),
        ("Encounter", "Encounter"),
        # An id that looks like a resource type name is still an id if it is not one.
        (f"{BASE}/Patient/Zebulon", "Patient/{id}"),
        (f"{BASE}/Binary/Patient", "Binary/Patient"),
        # Outside the base: every segment is templated, the host never appears.
        ("https://user:pw@ehr.example/bulkstatus/job-42", "/{id}/{id}"),
        ("https://ehr.example/api/FHIR/R4x/Patient", "/{id}/{id}/{id}/Patient"),
    ],
)
def test_path_template(url: str, expected: str) -> None:
    assert path_template(url, BASE) == expected


def test_path_template_ignores_a_trailing_slash_on_the_base() -> None:
    assert path_template(f"{BASE}/Patient/1", BASE + "/") == "Patient/{id}"


def test_path_template_never_contains_host_credentials_or_query() -> None:
    url = "https://admin:hunter2@ehr.example/api/FHIR/R4/Patient/9?name=Zebulon"
    template = path_template(url, BASE)
    for leaked in ("admin", "hunter2", "ehr.example", "Zebulon", "9"):
        assert leaked not in template


def test_query_keys_are_sorted_unique_names_without_values() -> None:
    params = httpx.QueryParams(
        [("patient", "Patient/CANARY-123"), ("name", "Zebulon"), ("_count", "50"), ("name", "Z")]
    )
    assert query_keys(params) == "_count,name,patient"
    assert query_keys(None) == ""
    assert query_keys({"bad key=Zebulon": "x"}) == "{param}"


def test_safe_query_description_keeps_values_only_on_the_allow_list() -> None:
    params = {
        "_count": "50",
        "_sort": "-_lastUpdated",
        "_lastUpdated": ["ge2024-01-01", "lt2025-01-01"],
        "_elements": "id,meta",
        "_since": "2024-01-01T00:00:00Z",
        "_summary": "count",
        "_type": "Patient,Observation",
        "_outputFormat": "application/fhir+ndjson",
        "name": "Zebulon",
        "patient": "Patient/CANARY-123",
        "identifier": ["urn:mrn|1", "urn:mrn|2"],
    }
    described = safe_query_description(params)
    assert described == (
        "_count=50&_elements=id,meta&_lastUpdated=ge2024-01-01&_lastUpdated=lt2025-01-01"
        "&_outputFormat=application/fhir+ndjson&_since=2024-01-01T00:00:00Z&_sort=-_lastUpdated"
        "&_summary=count&_type=Patient,Observation&identifier&name&patient"
    )
    for value in ("Zebulon", "CANARY-123", "urn:mrn"):
        assert value not in described


def test_describe_request() -> None:
    url = httpx.URL(f"{BASE}/Patient/CANARY-123/$everything?_count=50&start=2020-01-01")
    assert describe_request("GET", url, BASE) == "GET Patient/{id}/$everything?_count=50&start"
    assert describe_request("GET", httpx.URL(f"{BASE}/metadata"), BASE) == "GET metadata"


def test_redact_url_keeps_the_base_and_drops_ids_values_and_credentials() -> None:
    url = httpx.URL("https://me:pw@ehr.example/api/FHIR/R4/Patient/CANARY-123?name=Zebulon")
    assert redact_url(url, [BASE]) == "https://ehr.example/api/FHIR/R4/Patient/{id}?name"
    assert redact_url(url) == "https://ehr.example/{id}/{id}/{id}/Patient/{id}?name"
    other = httpx.URL("https://other.example:8443/api/FHIR/R4/Patient/1")
    assert redact_url(other, [BASE]) == "https://other.example:8443/{id}/{id}/{id}/Patient/{id}"


def test_httpx_log_filter_rewrites_url_arguments() -> None:
    redactor = HttpxUrlRedactor()
    redactor.base_urls.add(BASE)
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s %d %s"',
        ("GET", httpx.URL(f"{BASE}/Patient?name=Zebulon"), "HTTP/1.1", 200, "OK"),
        None,
    )
    assert redactor.filter(record) is True
    assert record.getMessage() == (f'HTTP Request: GET {BASE}/Patient?name "HTTP/1.1 200 OK"')


def test_install_is_idempotent_and_registers_bases() -> None:
    install_httpx_log_redaction(BASE)
    install_httpx_log_redaction(BASE)
    filters = [f for f in logging.getLogger("httpx").filters if isinstance(f, HttpxUrlRedactor)]
    assert len(filters) == 1
    assert BASE in filters[0].base_urls


def test_request_record_is_frozen() -> None:
    record = RequestRecord(
        request_id="r",
        resource_type="Patient",
        method="GET",
        path_template="Patient",
        query_keys="_count",
        status=200,
        latency_ms=1.0,
        attempt=1,
        outcome="ok",
        error_class=None,
        retry_after_seconds=None,
        response_bytes=10,
        started_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = 500  # type: ignore[misc]
