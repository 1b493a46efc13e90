"""Local FHIR test server: Bulk Data $export endpoints and their fault scenarios."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
import pytest

from tests.fhir_server import (
    FhirTestServer,
    RegisteredClient,
    Scenario,
    ServerAuth,
)
from tests.fhir_server.fhirtime import parse_instant
from tests.fhir_server.search import patient_reference

Resource = dict[str, Any]
ServerFactory = Callable[..., FhirTestServer]
Key = tuple[str, str]

ASYNC = {"Accept": "application/fhir+json", "Prefer": "respond-async"}
NON_PATIENT_TYPES = {"Organization", "Practitioner", "Location"}


class FakeClock:
    """A settable server clock."""

    def __init__(self, start: datetime) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += timedelta(seconds=seconds)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


def kickoff(
    client: httpx.Client,
    url: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    response = client.get(url, params=params, headers={**ASYNC, **(headers or {})})
    assert response.status_code == 202, response.text
    assert response.content == b""
    return response.headers["Content-Location"]


def manifest(client: httpx.Client, status_url: str, headers: dict[str, str] | None = None) -> Any:
    """Poll until complete (at most 20 polls); return the first manifest page."""
    for _ in range(20):
        response = client.get(status_url, headers=headers)
        if response.status_code == 200:
            assert response.headers["Content-Type"].startswith("application/json")
            return response.json()
        assert response.status_code == 202, response.text
    raise AssertionError("export never completed")


def all_pages(client: httpx.Client, first: Any) -> list[Any]:
    pages = [first]
    while links := [link for link in pages[-1].get("link", []) if link["relation"] == "next"]:
        response = client.get(links[0]["url"])
        assert response.status_code == 200
        pages.append(response.json())
    return pages


def lines(
    client: httpx.Client, item: dict[str, Any], headers: dict[str, str] | None = None
) -> list[Resource]:
    response = client.get(item["url"], headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/fhir+ndjson"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.content.endswith(b"\n") or response.content == b""
    return [orjson.loads(line) for line in response.content.splitlines()]


def exported(client: httpx.Client, document: Any) -> list[Resource]:
    """Every output line of every manifest page; checks count == lines per file."""
    resources: list[Resource] = []
    for page in all_pages(client, document):
        for item in page["output"]:
            got = lines(client, item)
            assert len(got) == item["count"]
            resources.extend(got)
    return resources


def keys(resources: list[Resource]) -> Counter[Key]:
    return Counter((r["resourceType"], r["id"]) for r in resources)


def expected(resources: list[Resource], keep: Callable[[Resource], bool]) -> Counter[Key]:
    return keys([r for r in resources if keep(r)])


def patient_ids(resources: list[Resource]) -> list[str]:
    return sorted(r["id"] for r in resources if r["resourceType"] == "Patient")


def owner(resource: Resource) -> str | None:
    if resource["resourceType"] == "Patient":
        return str(resource["id"])
    ref = patient_reference(resource)
    return ref.split("/", 1)[1] if ref else None


# -- kick-off --------------------------------------------------------------------------------


def test_kickoff_validation(fhir_server: FhirTestServer, client: httpx.Client) -> None:
    url = f"{fhir_server.base_url}/$export"
    refusals = [
        ({"Accept": "application/fhir+json"}, {}, 400),
        ({"Prefer": "respond-async"}, {}, 400),
        (ASYNC, {"_outputFormat": "application/json"}, 400),
        (ASYNC, {"_outputFormat": "application/fhir ndjson"}, 400),  # raw "+" arrives as " "
        (ASYNC, {"_since": "yesterday"}, 400),
        (ASYNC, {"_type": "Patient,observation"}, 400),
        (ASYNC, {"_typeFilter": "Observation?code=1234"}, 400),  # unsupported search param
        (ASYNC, {"_typeFilter": "no-question-mark"}, 400),
        (ASYNC, {"organizeOutputBy": "Encounter"}, 400),
        (ASYNC, {"allowPartialManifests": "maybe"}, 400),
        (ASYNC, {"_unknown": "1"}, 400),
        (ASYNC, {"patient": "Patient/x"}, 400),  # only in a POST body
    ]
    for headers, params, status in refusals:
        response = client.get(url, params=params, headers=headers)
        assert response.status_code == status, (headers, params)
        assert response.json()["resourceType"] == "OperationOutcome"
    statement = client.get(f"{fhir_server.base_url}/metadata").json()
    assert statement["instantiates"][0].endswith("/CapabilityStatement/bulk-data")
    assert statement["rest"][0]["operation"][0]["name"] == "export"
    by_type = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert "export" in {op["name"] for op in by_type["Group"]["operation"]}
    assert "export" in {op["name"] for op in by_type["Patient"]["operation"]}
    missing = client.get(f"{fhir_server.base_url}/Group/nope/$export", headers=ASYNC)
    assert missing.status_code == 404
    assert client.put(url, headers=ASYNC).status_code == 405
    for output_format in ("application/fhir+ndjson", "application/ndjson", "ndjson"):
        kickoff(client, url, {"_outputFormat": output_format})
    lenient = {"Prefer": "respond-async, handling=lenient"}
    kickoff(client, url, {"_unknown": "1", "includeAssociatedData": "x"}, lenient)
    assert fhir_server.stats.bulk_kickoffs == 4
    # No polls and no seconds to wait: the jobs are complete before anyone polls.
    assert {i.state for i in fhir_server.bulk_jobs().values()} == {"complete"}
    assert fhir_server.errors == []


def test_system_export_happy_path(
    fhir_server: FhirTestServer, client: httpx.Client, synthetic_resources: list[Resource]
) -> None:
    status_url = kickoff(client, f"{fhir_server.base_url}/$export")
    assert status_url.startswith(f"{fhir_server.base_url}/_bulk/status/")
    before = fhir_server.now()
    document = manifest(client, status_url)
    assert document["request"] == f"{fhir_server.base_url}/$export"
    assert document["requiresAccessToken"] is True
    assert document["deleted"] == [] and document["error"] == []
    assert "link" not in document
    assert parse_instant(document["transactionTime"]) <= before
    assert [o["type"] for o in document["output"]] == sorted(o["type"] for o in document["output"])
    resources = exported(client, document)
    assert keys(resources) == keys(synthetic_resources)
    assert all(r["resourceType"] == o["type"] for o in document["output"] for r in lines(client, o))
    (info,) = fhir_server.bulk_jobs().values()
    assert info.state == "complete" and info.level == "system"
    assert info.resources == len(synthetic_resources) and info.polls == 1
    assert info.downloads == 2 * len(document["output"])
    kinds = Counter(r.kind for r in fhir_server.request_log)
    assert kinds == {
        "bulk_kickoff": 1,
        "bulk_status": 1,
        "bulk_file": 2 * len(document["output"]),
    }
    stats = fhir_server.stats
    assert stats.bulk_polls == 1 and stats.bulk_files_served == 2 * len(document["output"])
    assert stats.data_requests == stats.requests
    assert stats.bulk_resources_served == 2 * len(synthetic_resources)


def test_patient_and_group_level(
    fhir_server_factory: ServerFactory, client: httpx.Client, synthetic_resources: list[Resource]
) -> None:
    pids = patient_ids(synthetic_resources)
    chosen = {pids[0], pids[3]}
    server = fhir_server_factory(groups={"g1": sorted(chosen)})
    patient_level = exported(
        client, manifest(client, kickoff(client, f"{server.base_url}/Patient/$export"))
    )
    assert keys(patient_level) == expected(
        synthetic_resources, lambda r: r["resourceType"] not in NON_PATIENT_TYPES
    )
    group_level = exported(
        client, manifest(client, kickoff(client, f"{server.base_url}/Group/g1/$export"))
    )
    assert keys(group_level) == expected(synthetic_resources, lambda r: owner(r) in chosen)
    assert {r["resourceType"] for r in group_level} > {"Patient", "Observation"}
    group = client.get(f"{server.base_url}/Group/g1").json()
    assert group["resourceType"] == "Group" and group["quantity"] == 2
    assert {m["entity"]["reference"] for m in group["member"]} == {f"Patient/{p}" for p in chosen}
    assert client.get(f"{server.base_url}/Group/all").status_code == 404
    assert client.get(f"{server.base_url}/Group/all/$export", headers=ASYNC).status_code == 404
    assert {i.level for i in server.bulk_jobs().values()} == {"patient", "group"}

    default = fhir_server_factory()
    everyone = exported(
        client, manifest(client, kickoff(client, f"{default.base_url}/Group/all/$export"))
    )
    assert keys(everyone) == keys(patient_level)
    assert client.get(f"{default.base_url}/Group/all").json()["quantity"] == len(pids)


def test_post_parameters_with_patient(
    fhir_server: FhirTestServer, client: httpx.Client, synthetic_resources: list[Resource]
) -> None:
    pid = patient_ids(synthetic_resources)[5]
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_type", "valueString": "Patient,Condition"},
            {"name": "patient", "valueReference": {"reference": f"Patient/{pid}"}},
            {"name": "allowPartialManifests", "valueBoolean": False},
        ],
    }
    url = f"{fhir_server.base_url}/Patient/$export"
    response = client.post(url, json=body, headers=ASYNC)
    assert response.status_code == 202
    resources = exported(client, manifest(client, response.headers["Content-Location"]))
    assert keys(resources) == expected(
        synthetic_resources,
        lambda r: r["resourceType"] in {"Patient", "Condition"} and owner(r) == pid,
    )
    bad = {"resourceType": "Parameters", "parameter": [{"name": "patient", "valueString": "x"}]}
    assert client.post(url, json=bad, headers=ASYNC).status_code == 400
    system = client.post(f"{fhir_server.base_url}/$export", json=body, headers=ASYNC)
    assert system.status_code == 400
    assert client.post(url, content=b"{", headers=ASYNC).status_code == 400


def test_type_type_filter_and_elements(
    fhir_server: FhirTestServer, client: httpx.Client, synthetic_resources: list[Resource]
) -> None:
    pid = patient_ids(synthetic_resources)[2]
    cutoff = datetime(2026, 1, 1, tzinfo=UTC)
    params = {
        "_type": "Patient,Observation,Condition",
        "_typeFilter": f"Observation?patient=Patient/{pid},Condition?_lastUpdated=ge2026-01-01",
        "_elements": "id,Observation.status",
    }
    resources = exported(
        client, manifest(client, kickoff(client, f"{fhir_server.base_url}/$export", params))
    )

    def keep(r: Resource) -> bool:
        rtype = r["resourceType"]
        if rtype == "Observation":
            return owner(r) == pid
        if rtype == "Condition":
            return parse_instant(r["meta"]["lastUpdated"]) >= cutoff
        return rtype == "Patient"

    want = expected(synthetic_resources, keep)
    assert keys(resources) == want
    assert 0 < sum(n for (t, _), n in want.items() if t == "Condition") < 46
    observation = next(r for r in resources if r["resourceType"] == "Observation")
    assert set(observation) == {"resourceType", "id", "meta", "status"}
    assert observation["meta"]["tag"][-1]["code"] == "SUBSETTED"
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    assert set(patient) == {"resourceType", "id", "meta"}


def test_since_reports_changes_and_deletions(
    fhir_server: FhirTestServer, client: httpx.Client, synthetic_resources: list[Resource]
) -> None:
    base = fhir_server.base_url
    observations = sorted(
        r["id"] for r in synthetic_resources if r["resourceType"] == "Observation"
    )
    fhir_server.delete("Observation", observations[0])  # before the first export
    first = manifest(client, kickoff(client, f"{base}/$export"))
    since = first["transactionTime"]
    assert sum(o["count"] for o in first["output"]) == len(synthetic_resources) - 1
    updated = fhir_server.update("Observation", observations[1])
    fhir_server.delete("Observation", observations[2])
    fhir_server.delete("Patient", patient_ids(synthetic_resources)[0])
    second = manifest(client, kickoff(client, f"{base}/$export", {"_since": since}))
    resources = exported(client, second)
    assert keys(resources) == {("Observation", observations[1]): 1}
    assert resources == [updated]
    assert second["error"] == []
    deleted = [b for item in second["deleted"] for b in lines(client, item)]
    assert [d["type"] for d in second["deleted"]] == ["Bundle"]
    assert sum(d["count"] for d in second["deleted"]) == len(deleted) == 2
    assert all(b["resourceType"] == "Bundle" and b["type"] == "transaction" for b in deleted)
    requests = sorted(e["request"]["url"] for b in deleted for e in b["entry"])
    assert requests == sorted(
        [f"Observation/{observations[2]}", f"Patient/{patient_ids(synthetic_resources)[0]}"]
    )
    assert {e["request"]["method"] for b in deleted for e in b["entry"]} == {"DELETE"}
    patient_level = manifest(client, kickoff(client, f"{base}/Patient/$export", {"_since": since}))
    assert [d["count"] for d in patient_level["deleted"]] == [2]
    infos = list(fhir_server.bulk_jobs().values())
    assert [i.deleted for i in infos] == [0, 2, 2]
    # Without _since the IG has no deleted entries; with _since after the deletes, none either.
    assert manifest(client, kickoff(client, f"{base}/$export"))["deleted"] == []
    later = manifest(
        client, kickoff(client, f"{base}/$export", {"_since": second["transactionTime"]})
    )
    assert later["output"] == [] and later["deleted"] == []


def test_snapshot_isolation(
    fhir_server_factory: ServerFactory, client: httpx.Client, synthetic_resources: list[Resource]
) -> None:
    server = fhir_server_factory(scenario=Scenario(bulk_polls_before_ready=1))
    status_url = kickoff(client, f"{server.base_url}/$export", {"_type": "Patient"})
    pids = patient_ids(synthetic_resources)
    server.update("Patient", pids[0], lambda r: r.update(gender="unknown"))
    server.delete("Patient", pids[1])
    server.add({"resourceType": "Patient", "id": "added-after-kickoff"})
    assert client.get(status_url).status_code == 202
    resources = exported(client, manifest(client, status_url))
    assert keys(resources) == expected(
        synthetic_resources, lambda r: r["resourceType"] == "Patient"
    )
    original = next(r for r in synthetic_resources if r["id"] == pids[0])
    assert next(r for r in resources if r["id"] == pids[0]) == original


# -- polling ---------------------------------------------------------------------------------


def test_polls_before_ready_progress_and_retry_after(
    fhir_server_factory: ServerFactory, client: httpx.Client
) -> None:
    scenario = Scenario(bulk_polls_before_ready=3, bulk_retry_after_seconds=2.5)
    server = fhir_server_factory(scenario=scenario)
    status_url = kickoff(client, f"{server.base_url}/$export", {"_type": "Patient"})
    progress = []
    for poll in range(3):
        assert next(iter(server.bulk_jobs().values())).state == "in-progress", poll
        response = client.get(status_url)
        assert response.status_code == 202 and response.content == b""
        assert response.headers["Retry-After"] == "3"
        progress.append(int(response.headers["X-Progress"].split("%")[0]))
    assert progress == sorted(progress) and progress[-1] < 100
    # Three polls answered 202: the job is now complete and the next poll gets the manifest.
    assert next(iter(server.bulk_jobs().values())).state == "complete"
    scenario.bulk_retry_after_http_date = True
    assert client.get(status_url).status_code == 200
    (info,) = server.bulk_jobs().values()
    assert info.state == "complete" and info.polls == 4

    server.scenario.bulk_polls_before_ready = 1
    status_url = kickoff(client, f"{server.base_url}/$export", {"_type": "Patient"})
    response = client.get(status_url)
    assert response.status_code == 202
    when = parsedate_to_datetime(response.headers["Retry-After"])
    assert server.now() < when <= server.now() + timedelta(seconds=5)


def test_job_seconds_on_the_server_clock(
    fhir_server_factory: ServerFactory, client: httpx.Client
) -> None:
    clock = FakeClock(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    server = fhir_server_factory(scenario=Scenario(bulk_job_seconds=60), clock=clock)
    status_url = kickoff(client, f"{server.base_url}/$export", {"_type": "Patient"})
    assert client.get(status_url).status_code == 202
    clock.advance(30)
    response = client.get(status_url)
    assert response.status_code == 202 and response.headers["X-Progress"] == "50% complete"
    clock.advance(30)
    assert next(iter(server.bulk_jobs().values())).state == "complete"
    assert client.get(status_url).json()["transactionTime"] == "2026-11-01T12:00:00.000+00:00"


def test_429_while_polling(fhir_server_factory: ServerFactory, client: httpx.Client) -> None:
    scenario = Scenario(bulk_429_polls=2, bulk_retry_after_seconds=7)
    server = fhir_server_factory(scenario=scenario)
    status_url = kickoff(client, f"{server.base_url}/$export", {"_type": "Patient"})
    first = client.get(status_url)
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert first.json()["issue"][0]["code"] == "throttled"
    scenario.bulk_retry_after_http_date = True
    second = client.get(status_url)
    assert second.status_code == 429
    assert parsedate_to_datetime(second.headers["Retry-After"]) > server.now()
    assert client.get(status_url).status_code == 200
    assert scenario.bulk_429_polls == 0
    (info,) = server.bulk_jobs().values()
    assert info.polls == 1
    assert [r.fault for r in server.request_log if r.kind == "bulk_status"] == [
        "bulk_429",
        "bulk_429",
        None,
    ]


def test_failed_job(fhir_server_factory: ServerFactory, client: httpx.Client) -> None:
    server = fhir_server_factory(scenario=Scenario(bulk_fail_job=True))
    status_url = kickoff(client, f"{server.base_url}/$export")
    for _ in range(2):
        response = client.get(status_url)
        assert response.status_code == 500
        assert response.json()["issue"][0]["severity"] in ("error", "fatal")
    (info,) = server.bulk_jobs().values()
    assert info.state == "failed"
    assert server.errors == []


def test_delete_job(fhir_server: FhirTestServer, client: httpx.Client) -> None:
    status_url = kickoff(client, f"{fhir_server.base_url}/$export", {"_type": "Patient"})
    document = manifest(client, status_url)
    file_url = document["output"][0]["url"]
    assert client.get(file_url).status_code == 200
    assert client.delete(status_url).status_code == 202
    assert client.get(status_url).status_code == 404
    assert client.get(file_url).status_code == 404
    assert client.delete(status_url).status_code == 404
    assert client.get(f"{fhir_server.base_url}/_bulk/status/0123abcd").status_code == 404
    (info,) = fhir_server.bulk_jobs().values()
    assert info.state == "deleted"
    assert fhir_server.stats.bulk_deletes == 1
    assert [r.kind for r in fhir_server.request_log].count("bulk_delete") == 2
    # A job can be cancelled while in progress.
    fhir_server.scenario.bulk_polls_before_ready = 5
    pending = kickoff(client, f"{fhir_server.base_url}/$export", {"_type": "Patient"})
    assert client.delete(pending).status_code == 202
    assert client.get(pending).status_code == 404


# -- manifests -------------------------------------------------------------------------------


def test_partial_manifests(
    fhir_server_factory: ServerFactory, client: httpx.Client, synthetic_resources: list[Resource]
) -> None:
    scenario = Scenario(bulk_resources_per_file=100, bulk_manifest_page_size=2)
    scenario.bulk_error_outcomes = 3
    server = fhir_server_factory(scenario=scenario)
    url = f"{server.base_url}/$export"
    first = manifest(client, kickoff(client, url, {"allowPartialManifests": "true"}))
    pages = all_pages(client, first)
    assert len(pages) > 3
    assert all(len(p["output"]) == 2 for p in pages[:-1]) and 1 <= len(pages[-1]["output"]) <= 2
    assert all(p["transactionTime"] == first["transactionTime"] for p in pages)
    assert [len(p["error"]) for p in pages] == [0] * (len(pages) - 1) + [1]
    assert "link" not in pages[-1]
    assert keys(exported(client, first)) == keys(synthetic_resources)
    counts = [o["count"] for p in pages for o in p["output"]]
    assert max(counts) == 100 and sum(counts) == len(synthetic_resources)
    errors = lines(client, pages[-1]["error"][0])
    assert len(errors) == pages[-1]["error"][0]["count"] == 3
    assert {e["resourceType"] for e in errors} == {"OperationOutcome"}
    assert client.get(first["link"][0]["url"].rsplit("/", 1)[0] + "/99").status_code == 404
    # Without allowPartialManifests the manifest is one page, whatever the scenario says.
    single = manifest(client, kickoff(client, url))
    assert "link" not in single and len(single["output"]) == len(counts)
    # Pages 2.. were read twice (all_pages, exported), plus the missing page 99.
    assert server.stats.bulk_manifests == 2 * (len(pages) - 1) + 1


def test_organize_output_by_patient(
    fhir_server_factory: ServerFactory, client: httpx.Client, synthetic_resources: list[Resource]
) -> None:
    pids = patient_ids(synthetic_resources)
    server = fhir_server_factory(
        groups={"g": pids[:6]}, scenario=Scenario(bulk_resources_per_file=60)
    )
    url = f"{server.base_url}/Group/g/$export"
    document = manifest(client, kickoff(client, url, {"organizeOutputBy": "Patient"}))
    assert len(document["output"]) > 1
    assert {o["type"] for o in document["output"]} == {"Patient"}
    seen: list[str] = []
    everything: list[Resource] = []
    for item in document["output"]:
        content = lines(client, item)
        assert len(content) == item["count"]
        assert content[0]["resourceType"] == "Patient"
        current = None
        for resource in content:
            if resource["resourceType"] == "Patient":
                current = resource["id"]
                seen.append(current)
            else:
                assert owner(resource) == current
        everything.extend(content)
    assert seen == pids[:6]
    assert keys(everything) == expected(synthetic_resources, lambda r: owner(r) in set(pids[:6]))
    # Patients head their blocks even when _type leaves them out.
    only = manifest(
        client, kickoff(client, url, {"organizeOutputBy": "Patient", "_type": "Condition"})
    )
    blocks = [r for item in only["output"] for r in lines(client, item)]
    with_conditions = {owner(r) for r in synthetic_resources if r["resourceType"] == "Condition"}
    assert [r["id"] for r in blocks if r["resourceType"] == "Patient"] == sorted(
        with_conditions & set(pids[:6])
    )
    assert {r["resourceType"] for r in blocks} == {"Patient", "Condition"}
    assert list(server.bulk_jobs().values())[-1].resources == len(blocks)


# -- files -----------------------------------------------------------------------------------


@pytest.fixture
def auth_server(fhir_server_factory: ServerFactory) -> tuple[FhirTestServer, FakeClock]:
    clock = FakeClock(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    auth = ServerAuth(required=True, clients={"bulk": RegisteredClient(secret="s3cret")})
    server = fhir_server_factory(
        auth=auth, clock=clock, scenario=Scenario(token_lifetime_seconds=60)
    )
    return server, clock


def token(client: httpx.Client, server: FhirTestServer, scope: str = "system/*.read") -> str:
    response = client.post(
        server.token_url,
        data={"grant_type": "client_credentials", "scope": scope},
        auth=("bulk", "s3cret"),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_file_downloads_need_a_live_token(
    auth_server: tuple[FhirTestServer, FakeClock], client: httpx.Client
) -> None:
    server, clock = auth_server
    url = f"{server.base_url}/$export"
    assert client.get(url, headers=ASYNC).status_code == 401
    bearer = {"Authorization": f"Bearer {token(client, server)}"}
    document = manifest(client, kickoff(client, url, {"_type": "Patient"}, bearer), bearer)
    item = document["output"][0]
    assert client.get(item["url"]).status_code == 401
    assert len(lines(client, item, bearer)) == item["count"]
    clock.advance(60)
    expired = client.get(item["url"], headers=bearer)
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    fresh = {"Authorization": f"Bearer {token(client, server)}"}
    assert len(lines(client, item, fresh)) == item["count"]
    statuses = [(r.kind, r.status, r.token_id) for r in server.request_log if r.kind == "bulk_file"]
    assert statuses == [
        ("bulk_file", 401, None),
        ("bulk_file", 200, "tok-000001"),
        ("bulk_file", 401, "tok-000001"),
        ("bulk_file", 200, "tok-000002"),
    ]


def test_scopes_limit_the_export(
    auth_server: tuple[FhirTestServer, FakeClock],
    client: httpx.Client,
    synthetic_resources: list[Resource],
) -> None:
    server, _ = auth_server
    server.auth.clients["bulk"].scopes = {"system/Patient.read", "system/Condition.read"}
    bearer = {"Authorization": f"Bearer {token(client, server, 'system/Patient.read')}"}
    url = f"{server.base_url}/$export"
    refused = client.get(url, params={"_type": "Condition"}, headers={**ASYNC, **bearer})
    assert refused.status_code == 403
    document = manifest(client, kickoff(client, url, headers=bearer), bearer)
    assert [o["type"] for o in document["output"]] == ["Patient"]
    # requiresAccessToken false: files are served without a token.
    server.scenario.bulk_requires_access_token = False
    document = manifest(client, kickoff(client, url, headers=bearer), bearer)
    assert document["requiresAccessToken"] is False
    assert len(lines(client, document["output"][0])) == len(patient_ids(synthetic_resources))


def test_truncated_and_short_downloads(fhir_server: FhirTestServer, client: httpx.Client) -> None:
    params = {"_type": "Observation"}
    document = manifest(client, kickoff(client, f"{fhir_server.base_url}/$export", params))
    (item,) = document["output"]
    fhir_server.scenario.bulk_truncate_downloads = 1
    fhir_server.scenario.bulk_short_downloads = 1
    with pytest.raises(httpx.HTTPError):
        client.get(item["url"])
    short = client.get(item["url"])
    assert short.status_code == 200
    assert "Content-Length" not in short.headers
    assert short.headers["Transfer-Encoding"] == "chunked"
    assert short.content.endswith(b"\n")
    assert len(short.content.splitlines()) == item["count"] // 2
    assert len(lines(client, item)) == item["count"]
    faults = [r.fault for r in fhir_server.request_log if r.kind == "bulk_file"]
    assert faults == ["bulk_truncate", "bulk_short", None]
    stats = fhir_server.stats
    assert stats.bulk_truncated_downloads == 1 and stats.bulk_short_downloads == 1
    assert stats.bulk_resources_served == item["count"]


def test_general_faults_apply_to_bulk_requests(
    fhir_server: FhirTestServer, client: httpx.Client
) -> None:
    scenario = fhir_server.scenario
    url = f"{fhir_server.base_url}/$export"
    scenario.burst_429(1)
    assert client.get(url, headers=ASYNC).status_code == 429
    status_url = kickoff(client, url, {"_type": "Patient"})
    scenario.burst_5xx(1, status=503)
    assert client.get(status_url).status_code == 503
    item = manifest(client, status_url)["output"][0]
    scenario.reset_next(1)
    with pytest.raises(httpx.HTTPError):
        client.get(item["url"])
    scenario.rate_limit = (1, 60.0)
    assert client.get(item["url"]).status_code == 200
    limited = client.get(item["url"])
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    log = [(r.kind, r.fault) for r in fhir_server.request_log]
    assert log == [
        ("bulk_kickoff", "burst"),
        ("bulk_kickoff", None),
        ("bulk_status", "burst"),
        ("bulk_status", None),
        ("bulk_file", "reset"),
        ("bulk_file", None),
        ("bulk_file", "rate_limit"),
    ]
    assert fhir_server.stats.bulk_polls == 1
