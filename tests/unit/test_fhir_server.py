"""Local FHIR R4 test server: search, paging, auth and every fault scenario."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
import pytest

from tests.fhir_server import (
    JWT_BEARER,
    FhirTestServer,
    KeyPair,
    RegisteredClient,
    Scenario,
    ServerAuth,
    jwk_set,
    make_client_assertion,
    make_ec_key,
    make_rsa_key,
)

Resource = dict[str, Any]
ServerFactory = Callable[..., FhirTestServer]


def patient(pid: str, last_updated: str, version: str = "1", **extra: Any) -> Resource:
    return {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"versionId": version, "lastUpdated": last_updated},
        **extra,
    }


# p1/p2 share a second (ms differ); p5 is in another offset but earlier in UTC.
SMALL = [
    patient("p1", "2025-03-04T10:11:12.100+00:00"),
    patient("p2", "2025-03-04T10:11:12.200Z"),
    patient("p3", "2025-03-04T10:11:13+00:00"),
    patient("p4", "2025-03-05T00:00:00+00:00"),
    patient("p5", "2024-12-31T23:59:59.999-05:00"),
]


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
    with httpx.Client(timeout=5) as http:
        yield http


@pytest.fixture
def small_server() -> Iterator[FhirTestServer]:
    with FhirTestServer(SMALL) as server:
        yield server


def ids(bundle: Resource, mode: str = "match") -> list[str]:
    return [
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    ]


def next_url(bundle: Resource) -> str | None:
    return next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)


def page_through(client: httpx.Client, url: str, params: dict[str, Any]) -> list[Resource]:
    """Naive paging: follow next links, return every page's bundle."""
    bundles = []
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        bundles.append(response.json())
        link = next_url(bundles[-1])
        if link is None:
            return bundles
        response = client.get(link)


# -- search -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gt2025-03-04T10:11:12.100+00:00", {"p2", "p3", "p4"}),
        ("ge2025-03-04T10:11:12.100+00:00", {"p1", "p2", "p3", "p4"}),
        ("lt2025-03-04T10:11:12.100+00:00", {"p5"}),
        ("le2025-03-04T10:11:12.100+00:00", {"p1", "p5"}),
        ("eq2025-03-04T10:11:12.100+00:00", {"p1"}),
        ("2025-03-04T10:11:12.100Z", {"p1"}),
        ("ge2025-03-04T15:11:12.100+05:00", {"p1", "p2", "p3", "p4"}),
        # Precision matters: the value covers its whole second / day.
        ("gt2025-03-04T10:11:12+00:00", {"p3", "p4"}),
        ("eq2025-03-04", {"p1", "p2", "p3"}),
        ("lt2025", set()),  # p5 is 2025-01-01T04:59:59.999Z
        ("lt2025-01-01T05:00:00Z", {"p5"}),
    ],
)
def test_last_updated_prefixes(
    small_server: FhirTestServer, client: httpx.Client, value: str, expected: set[str]
) -> None:
    response = client.get(f"{small_server.base_url}/Patient", params={"_lastUpdated": value})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert set(ids(bundle)) == expected
    assert bundle["total"] == len(expected)


def test_repeated_last_updated_is_and(small_server: FhirTestServer, client: httpx.Client) -> None:
    params = [("_lastUpdated", "ge2025-03-04T10:11:12.150Z"), ("_lastUpdated", "lt2025-03-05")]
    bundle = client.get(f"{small_server.base_url}/Patient", params=params).json()
    assert set(ids(bundle)) == {"p2", "p3"}


def test_invalid_date_is_400(small_server: FhirTestServer, client: httpx.Client) -> None:
    # An unencoded "+" arrives as a space: a real client bug the server must not hide.
    url = f"{small_server.base_url}/Patient?_lastUpdated=ge2025-03-04T10:11:12+00:00"
    response = client.get(url)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_sort_orders_and_breaks_ties_on_id(client: httpx.Client) -> None:
    same = "2025-01-01T00:00:00+00:00"
    data = [patient("b", same), patient("a", same), patient("c", "2024-01-01T00:00:00Z")]
    with FhirTestServer(data) as server:
        url = f"{server.base_url}/Patient"
        assert ids(client.get(url, params={"_sort": "_lastUpdated"}).json()) == ["c", "a", "b"]
        assert ids(client.get(url, params={"_sort": "-_lastUpdated"}).json()) == ["b", "a", "c"]
        assert ids(client.get(url).json()) == ["a", "b", "c"]


def test_paging_covers_every_resource_exactly_once(
    fhir_server: FhirTestServer, client: httpx.Client
) -> None:
    for rtype in ("Observation", "Encounter", "Patient"):
        bundles = page_through(client, f"{fhir_server.base_url}/{rtype}", {"_count": 37})
        seen = [(rtype, rid) for bundle in bundles for rid in ids(bundle)]
        assert len(seen) == len(set(seen))
        assert set(seen) == set(fhir_server.truth(rtype))
    assert len(bundles) == 1  # 20 patients fit one page of 37
    link = next_url(page_through(client, f"{fhir_server.base_url}/Observation", {})[0])
    assert link is not None and link.startswith(f"{fhir_server.base_url}?_getpages=")
    assert "&_offset=50&_count=50" in link


def test_count_is_capped_ignored_and_resized(synthetic_resources: list[Resource]) -> None:
    scenario = Scenario(max_page_size=20)
    with FhirTestServer(synthetic_resources, scenario) as server, httpx.Client() as client:
        url = f"{server.base_url}/Observation"
        assert len(ids(client.get(url, params={"_count": 500}).json())) == 20
        scenario.ignore_count = True
        scenario.default_page_size = 7
        assert len(ids(client.get(url, params={"_count": 30}).json())) == 7
        scenario.ignore_count = False
        scenario.page_size_changes = {2: 3}
        bundles = page_through(client, url, {"_count": 10, "_sort": "_lastUpdated"})
        sizes = [len(ids(b)) for b in bundles]
        assert sizes[:3] == [10, 3, 3]
        seen = [rid for b in bundles for rid in ids(b)]
        assert len(seen) == len(set(seen)) == len(server.truth("Observation"))


def test_summary_count(fhir_server: FhirTestServer, client: httpx.Client) -> None:
    bundle = client.get(f"{fhir_server.base_url}/Observation", params={"_summary": "count"}).json()
    assert bundle["total"] == len(fhir_server.truth("Observation"))
    assert "entry" not in bundle
    assert next_url(bundle) is None


def test_elements_id(fhir_server: FhirTestServer, client: httpx.Client) -> None:
    bundle = client.get(
        f"{fhir_server.base_url}/Encounter", params={"_elements": "id", "_count": 5}
    ).json()
    resources = [e["resource"] for e in bundle["entry"]]
    assert len(resources) == 5
    for resource in resources:
        assert set(resource) == {"resourceType", "id", "meta"}
        assert resource["meta"]["versionId"]
        assert any(tag["code"] == "SUBSETTED" for tag in resource["meta"]["tag"])
    # The stored resource is untouched.
    assert "tag" not in fhir_server.get("Encounter", resources[0]["id"])["meta"]


def test_id_and_patient_params(fhir_server: FhirTestServer, client: httpx.Client) -> None:
    patients = fhir_server.resources("Patient")
    pid = patients[3]["id"]
    expected = {
        o["id"]
        for o in fhir_server.resources("Observation")
        if o["subject"]["reference"] == f"Patient/{pid}"
    }
    assert expected
    url = f"{fhir_server.base_url}/Observation"
    for value in (f"Patient/{pid}", pid):
        bundle = client.get(url, params={"patient": value, "_count": 1000}).json()
        assert set(ids(bundle)) == expected
    immunizations = client.get(f"{fhir_server.base_url}/Immunization", params={"patient": pid})
    assert all(
        e["resource"]["patient"]["reference"] == f"Patient/{pid}"
        for e in immunizations.json().get("entry", [])
    )
    assert ids(client.get(f"{fhir_server.base_url}/Patient", params={"patient": pid}).json()) == [
        pid
    ]
    wanted = f"{patients[0]['id']},{patients[1]['id']}"
    bundle = client.get(f"{fhir_server.base_url}/Patient", params={"_id": wanted}).json()
    assert set(ids(bundle)) == {patients[0]["id"], patients[1]["id"]}


def test_date_param(fhir_server: FhirTestServer, client: httpx.Client) -> None:
    cutoff = datetime(2024, 1, 1, tzinfo=UTC)
    observations = fhir_server.resources("Observation")
    after = {
        o["id"] for o in observations if datetime.fromisoformat(o["effectiveDateTime"]) >= cutoff
    }
    assert 0 < len(after) < len(observations)
    url = f"{fhir_server.base_url}/Observation"
    got = ids(client.get(url, params={"date": "ge2024-01-01", "_count": 1000}).json())
    assert set(got) == after
    before = client.get(url, params={"date": "lt2024-01-01", "_summary": "count"}).json()
    assert before["total"] == len(observations) - len(after)
    # Condition matches on recordedDate or onsetDateTime.
    conditions = fhir_server.resources("Condition")
    target = conditions[0]["onsetDateTime"][:10]
    expected = {
        c["id"] for c in conditions if target in (c["onsetDateTime"][:10], c["recordedDate"][:10])
    }
    bundle = client.get(f"{fhir_server.base_url}/Condition", params={"date": target}).json()
    assert set(ids(bundle)) == expected


def test_unknown_params_are_ignored_and_reported(
    fhir_server: FhirTestServer, client: httpx.Client
) -> None:
    bundle = client.get(
        f"{fhir_server.base_url}/Patient", params={"foo": "bar", "_count": 100}
    ).json()
    assert len(ids(bundle)) == 20
    outcomes = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    assert "foo" in outcomes[0]["resource"]["issue"][0]["diagnostics"]


def test_sort_and_last_updated_unsupported(synthetic_resources: list[Resource]) -> None:
    scenario = Scenario(supports_sort=False, last_updated_unsupported={"Observation"})
    with FhirTestServer(synthetic_resources, scenario) as server, httpx.Client() as client:
        obs = f"{server.base_url}/Observation"
        refused = client.get(obs, params={"_lastUpdated": "ge2020-01-01"})
        assert refused.status_code == 400
        assert refused.json()["issue"][0]["code"] == "not-supported"
        enc = f"{server.base_url}/Encounter"
        assert client.get(enc, params={"_lastUpdated": "ge2020-01-01"}).status_code == 200
        assert client.get(enc, params={"_sort": "_lastUpdated"}).status_code == 400
        scenario.ignore_unsupported_sort = True
        assert client.get(enc, params={"_sort": "_lastUpdated"}).status_code == 200
        meta = client.get(f"{server.base_url}/metadata").json()
        by_type = {r["type"]: r for r in meta["rest"][0]["resource"]}
        names = {p["name"] for p in by_type["Observation"]["searchParam"]}
        assert "_lastUpdated" not in names and "_sort" not in names
        assert "_lastUpdated" in {p["name"] for p in by_type["Encounter"]["searchParam"]}


def test_metadata(fhir_server: FhirTestServer, client: httpx.Client) -> None:
    response = client.get(f"{fhir_server.base_url}/metadata")
    assert response.status_code == 200
    assert "date" in response.headers
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    oauth = rest["security"]["extension"][0]
    assert oauth["url"].endswith("/oauth-uris")
    assert oauth["extension"][0] == {"url": "token", "valueUri": fhir_server.token_url}
    by_type = {r["type"]: {p["name"] for p in r["searchParam"]} for r in rest["resource"]}
    assert {rtype for rtype, _ in fhir_server.truth()} <= set(by_type)
    assert {"_lastUpdated", "_count", "_sort", "_summary", "patient", "date"} <= by_type[
        "Observation"
    ]
    assert "date" not in by_type["Practitioner"]


def test_read_everything_and_data_api(fhir_server: FhirTestServer, client: httpx.Client) -> None:
    pid = fhir_server.resources("Patient")[0]["id"]
    read = client.get(f"{fhir_server.base_url}/Patient/{pid}")
    assert read.status_code == 200
    assert read.json()["id"] == pid
    assert read.headers["etag"] == f'W/"{read.json()["meta"]["versionId"]}"'
    assert client.get(f"{fhir_server.base_url}/Patient/nope").status_code == 404

    compartment = {
        key
        for rtype in ("Encounter", "Observation", "Condition", "Immunization", "MedicationRequest")
        for key in fhir_server.truth(rtype)
        if (fhir_server.get(*key) or {}).get("subject", {}).get("reference") == f"Patient/{pid}"
        or (fhir_server.get(*key) or {}).get("patient", {}).get("reference") == f"Patient/{pid}"
    }
    bundles = page_through(
        client, f"{fhir_server.base_url}/Patient/{pid}/$everything", {"_count": 10}
    )
    everything = {
        (e["resource"]["resourceType"], e["resource"]["id"]) for b in bundles for e in b["entry"]
    }
    assert ("Patient", pid) in everything
    assert compartment <= everything
    assert len(bundles) > 1

    before = fhir_server.truth()
    old_version, _ = before[("Patient", pid)]
    max_before = max(lu for _, lu in before.values())
    new = fhir_server.update("Patient", pid, lambda r: r.update(gender="other"))
    assert new["meta"]["versionId"] == str(int(old_version) + 1)
    assert new["gender"] == "other"
    newer = fhir_server.update("Patient", pid)
    stamps = [
        datetime.fromisoformat(x)
        for x in (max_before, new["meta"]["lastUpdated"], newer["meta"]["lastUpdated"])
    ]
    assert stamps[0] < stamps[1] < stamps[2]
    assert new["meta"]["lastUpdated"].endswith("+00:00") and "." in new["meta"]["lastUpdated"]
    assert fhir_server.truth("Patient")[("Patient", pid)][0] == newer["meta"]["versionId"]

    added = fhir_server.add(patient("brand-new", "1999-01-01T00:00:00Z", version="9"))
    assert added["meta"]["versionId"] == "1"
    assert added["meta"]["lastUpdated"] > newer["meta"]["lastUpdated"]
    fhir_server.delete("Patient", pid)
    assert client.get(f"{fhir_server.base_url}/Patient/{pid}").status_code == 410
    assert ("Patient", pid) not in fhir_server.truth()
    total = client.get(f"{fhir_server.base_url}/Patient", params={"_summary": "count"}).json()
    assert total["total"] == 20  # one deleted, one added


# -- auth -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> KeyPair:
    return make_rsa_key("rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> KeyPair:
    return make_ec_key("ec-1")


@pytest.fixture
def auth(rsa_key: KeyPair, ec_key: KeyPair) -> ServerAuth:
    return ServerAuth(
        required=True,
        clients={
            "rsa-client": RegisteredClient(jwks=jwk_set(rsa_key), scopes={"system/*.read"}),
            "ec-client": RegisteredClient(
                public_keys={"ec-1": ec_key.public_pem}, scopes={"system/Patient.rs"}
            ),
            "secret-client": RegisteredClient(secret="s3cr3t", scopes={"system/Patient.read"}),
        },
        static_tokens={"static-token": {"system/Observation.read"}},
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture
def auth_server(auth: ServerAuth, clock: FakeClock) -> Iterator[FhirTestServer]:
    with FhirTestServer(SMALL, auth=auth, clock=clock) as server:
        yield server


def assertion_form(
    server: FhirTestServer, client_id: str, key: KeyPair, **kw: Any
) -> dict[str, str]:
    assertion = make_client_assertion(client_id, key, server.token_url, now=server.now(), **kw)
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_rs384_jwks(
    auth_server: FhirTestServer, client: httpx.Client, rsa_key: KeyPair
) -> None:
    form = assertion_form(auth_server, "rsa-client", rsa_key)
    form["scope"] = "system/Patient.rs system/Observation.read"
    response = client.post(auth_server.token_url, data=form)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "system/Patient.rs system/Observation.read"
    data = client.get(f"{auth_server.base_url}/Patient", headers=bearer(body["access_token"]))
    assert data.status_code == 200
    assert auth_server.request_log[-1].token_id == "tok-000001"
    assert body["access_token"] not in repr(auth_server.request_log)
    assert auth_server.stats.tokens_issued == 1


def test_token_es384_pem(
    auth_server: FhirTestServer, client: httpx.Client, ec_key: KeyPair
) -> None:
    response = client.post(
        auth_server.token_url, data=assertion_form(auth_server, "ec-client", ec_key)
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/Patient.rs"
    token = response.json()["access_token"]
    assert client.get(f"{auth_server.base_url}/Patient", headers=bearer(token)).status_code == 200


def test_token_client_secret(auth_server: FhirTestServer, client: httpx.Client) -> None:
    grant = {"grant_type": "client_credentials", "scope": "system/Patient.rs"}
    basic = client.post(auth_server.token_url, data=grant, auth=("secret-client", "s3cr3t"))
    assert basic.status_code == 200, basic.text
    form = {**grant, "client_id": "secret-client", "client_secret": "s3cr3t"}
    posted = client.post(auth_server.token_url, data=form)
    assert posted.status_code == 200
    assert posted.json()["access_token"] != basic.json()["access_token"]
    wrong = client.post(auth_server.token_url, data=grant, auth=("secret-client", "nope"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"


def test_token_refusals(
    auth_server: FhirTestServer, client: httpx.Client, rsa_key: KeyPair
) -> None:
    url = auth_server.token_url
    impostor = KeyPair(make_rsa_key("rsa-1").private_pem, rsa_key.public_jwk)
    cases = {
        "bad signature": assertion_form(auth_server, "rsa-client", impostor),
        "wrong aud": assertion_form(auth_server, "rsa-client", rsa_key, aud="http://elsewhere"),
        "sub != iss": assertion_form(auth_server, "rsa-client", rsa_key, sub="someone"),
        "unknown kid": assertion_form(auth_server, "rsa-client", rsa_key, kid="other"),
        "exp too far": assertion_form(
            auth_server, "rsa-client", rsa_key, lifetime=timedelta(minutes=10)
        ),
        "expired": assertion_form(
            auth_server, "rsa-client", rsa_key, lifetime=timedelta(seconds=-5)
        ),
    }
    for case, form in cases.items():
        response = client.post(url, data=form)
        assert response.status_code == 401, case
        assert response.json()["error"] == "invalid_client", case

    once = assertion_form(auth_server, "rsa-client", rsa_key)
    assert client.post(url, data=once).status_code == 200
    replay = client.post(url, data=once)
    assert replay.status_code == 401
    assert "jti" in replay.json()["error_description"]

    too_wide = {"grant_type": "client_credentials", "scope": "system/Observation.read"}
    refused = client.post(url, data=too_wide, auth=("secret-client", "s3cr3t"))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    wrong_grant = {"grant_type": "password"}
    assert client.post(url, data=wrong_grant).json()["error"] == "unsupported_grant_type"
    assert auth_server.stats.token_errors == len(cases) + 3


def test_data_requests_need_a_valid_token(
    auth_server: FhirTestServer, client: httpx.Client, clock: FakeClock
) -> None:
    url = f"{auth_server.base_url}/Patient"
    missing = client.get(url)
    assert missing.status_code == 401
    assert 'error="invalid_token"' in missing.headers["www-authenticate"]
    assert client.get(url, headers=bearer("forged")).status_code == 401
    assert auth_server.request_log[-1].token_id == "unknown"
    # Metadata stays open.
    assert client.get(f"{auth_server.base_url}/metadata").status_code == 200

    grant = {"grant_type": "client_credentials"}
    token = client.post(auth_server.token_url, data=grant, auth=("secret-client", "s3cr3t"))
    headers = bearer(token.json()["access_token"])
    assert client.get(url, headers=headers).status_code == 200
    forbidden = client.get(f"{auth_server.base_url}/Observation", headers=headers)
    assert forbidden.status_code == 403
    assert forbidden.json()["issue"][0]["code"] == "forbidden"

    clock.advance(299.999)
    assert client.get(url, headers=headers).status_code == 200
    clock.advance(0.001)  # exactly issue time + lifetime
    expired = client.get(url, headers=headers)
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]

    static = bearer("static-token")
    assert client.get(f"{auth_server.base_url}/Observation", headers=static).status_code == 200
    assert client.get(url, headers=static).status_code == 403


def test_token_lifetime_and_token_faults(auth_server: FhirTestServer, client: httpx.Client) -> None:
    scenario = auth_server.scenario

    def request_token() -> httpx.Response:
        grant = {"grant_type": "client_credentials"}
        return client.post(auth_server.token_url, data=grant, auth=("secret-client", "s3cr3t"))

    scenario.token_lifetime_seconds = 60
    assert request_token().json()["expires_in"] == 60
    scenario.fraction_429 = 1.0  # data-request faults spare the token endpoint...
    assert request_token().status_code == 200
    scenario.faults_on_token = True  # ...unless asked
    assert request_token().status_code == 429
    scenario.fraction_429, scenario.faults_on_token = 0.0, False
    scenario.fraction_token_5xx = 1.0
    assert request_token().status_code in (500, 503)
    assert client.get(f"{auth_server.base_url}/metadata").status_code == 200


# -- faults -------------------------------------------------------------------------------


def test_rate_limit_retry_after_seconds_and_http_date(
    small_server: FhirTestServer, client: httpx.Client
) -> None:
    url = f"{small_server.base_url}/Patient"
    small_server.scenario.rate_limit = (3, 30.0)
    statuses = [client.get(url).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get(url)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 30
    assert client.get(f"{small_server.base_url}/metadata").status_code == 200

    small_server.scenario.retry_after_http_date = True
    dated = client.get(url)
    retry_at = parsedate_to_datetime(dated.headers["retry-after"])
    sent_at = parsedate_to_datetime(dated.headers["date"])
    assert dated.status_code == 429
    assert timedelta(seconds=1) <= retry_at - sent_at <= timedelta(seconds=32)
    assert small_server.stats.sent_429 == 3
    assert small_server.stats.by_status[429] == 3


def test_random_429_and_metadata_flag(small_server: FhirTestServer, client: httpx.Client) -> None:
    small_server.scenario.fraction_429 = 1.0
    small_server.scenario.retry_after_seconds = 2
    response = client.get(f"{small_server.base_url}/Patient/p1")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert client.get(f"{small_server.base_url}/metadata").status_code == 200
    small_server.scenario.faults_on_metadata = True
    assert client.get(f"{small_server.base_url}/metadata").status_code == 429
    assert small_server.request_log[-1].fault == "random_429"


def test_burst_and_random_5xx(small_server: FhirTestServer, client: httpx.Client) -> None:
    url = f"{small_server.base_url}/Patient"
    small_server.scenario.burst_5xx(2)
    burst = [client.get(url) for _ in range(3)]
    assert [r.status_code for r in burst] == [503, 503, 200]
    assert burst[0].headers["retry-after"] == "1"
    small_server.scenario.burst_5xx(1, status=500)
    assert client.get(url).status_code == 500

    small_server.scenario.fraction_5xx = 1.0
    failures = [client.get(url) for _ in range(12)]
    assert {r.status_code for r in failures} <= {500, 502, 503, 504}
    gateway = [r for r in failures if r.status_code in (502, 504)]
    assert gateway and all(r.headers["content-type"].startswith("text/html") for r in gateway)
    assert small_server.stats.sent_5xx == 15


def test_random_faults_are_reproducible(client: httpx.Client) -> None:
    def statuses(seed: int) -> list[int]:
        with FhirTestServer(SMALL, Scenario(seed=seed, fraction_5xx=0.5)) as server:
            return [client.get(f"{server.base_url}/Patient").status_code for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert 200 in first and any(s >= 500 for s in first)


def test_reset_breaks_the_response(small_server: FhirTestServer, client: httpx.Client) -> None:
    url = f"{small_server.base_url}/Patient"
    small_server.scenario.reset_next(1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(url)
    assert client.get(url).status_code == 200
    assert small_server.stats.resets == 1
    assert small_server.request_log[0].fault == "reset"


def test_slow_response_times_out(small_server: FhirTestServer) -> None:
    url = f"{small_server.base_url}/Patient"
    small_server.scenario.slow_next(1, 0.5)
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.2)) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.get(url)
        assert time.monotonic() - started < 0.45
        assert client.get(url).status_code == 200
    assert small_server.stats.slow_responses == 1


def test_update_while_paging_skips_with_naive_paging(
    synthetic_resources: list[Resource], client: httpx.Client
) -> None:
    scenario = Scenario(seed=3, update_while_paging=1)
    with FhirTestServer(synthetic_resources, scenario) as server:
        before = set(server.truth("Observation"))
        bundles = page_through(
            client, f"{server.base_url}/Observation", {"_sort": "_lastUpdated", "_count": 50}
        )
        seen = [("Observation", rid) for b in bundles for rid in ids(b)]
        skipped = before - set(seen)
        assert skipped, "naive offset paging should have skipped a resource"
        assert server.stats.updates_while_paging == len(bundles) - 1
        changed = [k for k, (version, _) in server.truth("Observation").items() if version != "2"]
        assert changed  # updates really happened


def test_rename_field_on_one_page(small_server: FhirTestServer, client: httpx.Client) -> None:
    for pid in ("p1", "p2", "p3", "p4", "p5"):
        small_server.update("Patient", pid, lambda r: r.update(birthDate="2000-01-01"))
    small_server.scenario.rename_field = ("Patient", "birthDate", "birth_date", 2)
    bundles = page_through(client, f"{small_server.base_url}/Patient", {"_count": 2})
    pages = [[e["resource"] for e in b["entry"]] for b in bundles]
    assert all("birthDate" in r and "birth_date" not in r for r in pages[0] + pages[2])
    assert all("birth_date" in r and "birthDate" not in r for r in pages[1])
    assert "birthDate" in small_server.get("Patient", "p3")


def test_malformed_page(small_server: FhirTestServer, client: httpx.Client) -> None:
    small_server.scenario.malformed_page = ("Patient", 2)
    first = client.get(f"{small_server.base_url}/Patient", params={"_count": 2})
    link = next_url(first.json())
    assert link is not None
    for _ in range(2):
        second = client.get(link)
        assert second.status_code == 200
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(second.content)
    assert small_server.stats.malformed_pages == 2


def test_outcome_and_include_entries(fhir_server: FhirTestServer, client: httpx.Client) -> None:
    fhir_server.scenario.outcome_entry_every_n_pages = 2
    fhir_server.scenario.include_entries = True
    bundles = page_through(client, f"{fhir_server.base_url}/Observation", {"_count": 10})[:3]
    modes = [[e["search"]["mode"] for e in b["entry"]] for b in bundles]
    assert "outcome" not in modes[0] and "outcome" not in modes[2]
    assert modes[1].count("outcome") == 1
    assert all(m.count("match") == 10 for m in modes)
    included = [e["resource"] for e in bundles[0]["entry"] if e["search"]["mode"] == "include"]
    assert included and all(r["resourceType"] == "Patient" for r in included)


# -- server behaviour -----------------------------------------------------------------------


def test_date_header_follows_server_clock_and_log(client: httpx.Client) -> None:
    clock = FakeClock(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    with FhirTestServer(SMALL, clock=clock) as server:
        response = client.get(f"{server.base_url}/Nope/1")
        assert response.status_code == 404
        assert response.headers["date"] == "Wed, 02 Jan 2030 03:04:05 GMT"
        record = server.request_log[-1]
        assert (record.method, record.path, record.status) == ("GET", "/fhir/Nope/1", 404)
        assert record.time == clock.value
        assert server.stats.requests == 1


def test_server_stops_and_frees_connections(client: httpx.Client) -> None:
    with FhirTestServer(SMALL) as server:
        url = f"{server.base_url}/Patient"
        assert client.get(url).status_code == 200
    with pytest.raises(httpx.TransportError):
        client.get(url)


def test_fixture_factory(fhir_server_factory: ServerFactory) -> None:
    server = fhir_server_factory(scenario=Scenario(default_page_size=5))
    bundle = httpx.get(f"{server.base_url}/Patient").json()
    assert len(ids(bundle)) == 5
    assert bundle["total"] == 20
    token = base64.urlsafe_b64decode(
        next_url(bundle).split("_getpages=")[1].split("&")[0] + "=="
    ).decode()
    assert token.startswith("Patient?")
