"""The client calls Bulk Data needs: send() (empty 202s, statuses handed back, methods),
close() closing the token provider."""

from __future__ import annotations

import httpx
import pytest

from loaders.exceptions import RequestRejected
from loaders.http import FhirHttpClient, RequestRecord, RetryPolicy, StaticToken

BASE = "https://ehr.example/fhir"


def harness(*answers: httpx.Response):
    script = list(answers)
    seen: list[httpx.Request] = []
    records: list[RequestRecord] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return script.pop(0) if len(script) > 1 else script[0]

    client = FhirHttpClient(
        BASE,
        StaticToken("tok"),
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=3, base_delay=0.0),
        sleep=lambda s: None,
        on_request=records.append,
    )
    return client, seen, records


def test_an_empty_202_is_an_answer_not_a_malformed_response() -> None:
    client, seen, records = harness(httpx.Response(202, headers={"Content-Location": "x"}))
    answer = client.send(
        "GET", "$export", {"_type": "Patient"}, headers={"Prefer": "respond-async"}
    )
    assert (answer.status, answer.raw, answer.json_object()) == (202, b"", None)
    assert answer.headers["Content-Location"] == "x"
    assert seen[0].headers["Prefer"] == "respond-async"
    assert [(r.method, r.path_template, r.outcome) for r in records] == [("GET", "$export", "ok")]


def test_statuses_the_caller_asks_for_are_handed_back_without_retry() -> None:
    client, seen, records = harness(
        httpx.Response(429, headers={"Retry-After": "5"}), httpx.Response(200, json={})
    )
    answer = client.send("GET", "_bulk/status/j", answer_statuses=frozenset({429}))
    assert answer.status == 429 and len(seen) == 1
    assert records[0].retry_after_seconds == 5

    client, seen, _ = harness(httpx.Response(429), httpx.Response(200, json={}))
    assert client.send("GET", "_bulk/status/j").status == 200, "otherwise 429 is retried"
    assert len(seen) == 2


def test_delete_and_post_are_sent_as_such_and_other_answers_still_raise() -> None:
    client, seen, records = harness(httpx.Response(202))
    client.send("DELETE", f"{BASE}/_bulk/status/j")
    client.send("POST", "Patient/$export", json_body={"resourceType": "Parameters"})
    assert [r.method for r in seen] == ["DELETE", "POST"]
    assert seen[1].content == b'{"resourceType":"Parameters"}'
    assert [r.method for r in records] == ["DELETE", "POST"]

    client, _, _ = harness(httpx.Response(404))
    with pytest.raises(RequestRejected, match="404"):
        client.send("GET", "_bulk/status/j")


def test_close_closes_the_token_provider() -> None:
    class Provider(StaticToken):
        closed = False

        def close(self) -> None:
            self.closed = True

    provider = Provider("tok")
    FhirHttpClient(BASE, provider).close()
    assert provider.closed
