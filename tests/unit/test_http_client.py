"""FhirHttpClient against scripted servers: retries, auth refresh, rejections, no PHI leaks."""

from __future__ import annotations

import io
import itertools
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from loaders.exceptions import (
    AuthenticationError,
    AuthorizationError,
    CircuitOpenError,
    ConfigError,
    ExtractError,
    MalformedResponseError,
    RequestRejected,
    RetriesExhausted,
)
from loaders.http import (
    CircuitBreaker,
    ClientCredentials,
    FhirHttpClient,
    RequestRecord,
    RetryPolicy,
    StaticToken,
    Timeouts,
    TokenBucket,
)

BASE = "https://ehr.example/api/FHIR/R4"
NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)
BUNDLE = {"resourceType": "Bundle", "type": "searchset", "entry": []}

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Server:
    """Answers requests from a script (the last answer repeats) and records them."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer


class Harness:
    """A client wired to a scripted server, a fake clock and a record list."""

    def __init__(self, server: Server, **kwargs: object) -> None:
        self.server = server
        self.clock = FakeClock()
        self.records: list[RequestRecord] = []
        options: dict[str, object] = {
            "retry": RetryPolicy(),
            "transport": httpx.MockTransport(server),
            "sleep": self.clock.sleep,
            "clock": self.clock,
            "now": lambda: NOW,
            "rng": random.Random(42),
            "on_request": self.records.append,
        }
        options.update(kwargs)
        auth = options.pop("auth", StaticToken("tok-static", scope="system/Patient.rs"))
        self.client = FhirHttpClient(BASE, auth, **options)  # type: ignore[arg-type]

    @property
    def outcomes(self) -> list[str]:
        return [record.outcome for record in self.records]


def ok(body: object = BUNDLE, **kwargs: object) -> httpx.Response:
    return httpx.Response(200, json=body, **kwargs)  # type: ignore[arg-type]


def outcome(*issues: tuple[str, str], diagnostics: str = "") -> dict[str, object]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": severity, "code": code, "diagnostics": diagnostics}
            for severity, code in issues
        ],
    }


# -- success -------------------------------------------------------------------------------


def test_a_json_answer_is_returned_with_its_metadata() -> None:
    date = "Tue, 04 Mar 2025 12:00:05 GMT"
    harness = Harness(Server(ok(headers={"Date": date})))
    response = harness.client.get_json("Patient", {"_count": "50"}, resource_type="Patient")
    assert response.body == BUNDLE
    assert response.status == 200
    assert response.attempts == 1
    assert response.server_date == NOW + timedelta(seconds=5)
    assert response.raw.startswith(b'{"resourceType"')
    request = harness.server.requests[0]
    assert str(request.url) == f"{BASE}/Patient?_count=50"
    assert request.headers["Authorization"] == "Bearer tok-static"
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.headers["X-Request-Id"] == response.request_id
    assert request.headers["User-Agent"].startswith("fhir-elt")
    [record] = harness.records
    assert (record.outcome, record.status, record.path_template) == ("ok", 200, "Patient")
    assert record.query_keys == "_count"
    assert record.request_id == response.request_id
    assert record.response_bytes == len(response.raw)
    assert "resourceType" not in repr(response)


def test_a_paging_link_on_the_same_origin_is_used_as_given() -> None:
    harness = Harness(Server(ok()))
    link = f"{BASE}?_getpages=a%2Fb&_getpagesoffset=20&_count=50&_bundletype=searchset"
    harness.client.get_json(link, resource_type="Patient")
    assert str(harness.server.requests[0].url) == link
    record = harness.records[0]
    assert record.path_template == "{base}"
    assert record.query_keys == "_bundletype,_count,_getpages,_getpagesoffset"


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/api/FHIR/R4?_getpages=x",
        "http://ehr.example/api/FHIR/R4?_getpages=x",
        "https://ehr.example:8443/api/FHIR/R4?_getpages=x",
    ],
)
def test_a_link_to_another_origin_is_refused_before_sending(link: str) -> None:
    harness = Harness(Server(ok()))
    with pytest.raises(RequestRejected, match="refusing to send a request and the token") as exc:
        harness.client.get_json(link, resource_type="Patient")
    assert "_getpages" not in str(exc.value)
    assert harness.server.requests == []


def test_the_default_port_counts_as_the_same_origin() -> None:
    harness = Harness(Server(ok()))
    harness.client.get_json("https://ehr.example:443/api/FHIR/R4/Patient", resource_type="Patient")
    assert len(harness.server.requests) == 1


# -- transient failures --------------------------------------------------------------------


def test_5xx_is_retried_with_jittered_backoff_then_succeeds() -> None:
    harness = Harness(Server(httpx.Response(503), httpx.Response(502), httpx.Response(500), ok()))
    response = harness.client.get_json("Observation", resource_type="Observation")
    assert response.attempts == 4
    assert harness.outcomes == ["retry", "retry", "retry", "ok"]
    assert [record.attempt for record in harness.records] == [1, 2, 3, 4]
    caps = [0.5, 1.0, 2.0]
    assert all(0 <= slept <= cap for slept, cap in zip(harness.clock.sleeps, caps, strict=True))
    counters = harness.client.counters
    assert (counters.requests, counters.retries, counters.http_5xx) == (4, 3, 3)
    assert response.elapsed_seconds == pytest.approx(sum(harness.clock.sleeps))


def test_retry_after_seconds_is_honoured() -> None:
    harness = Harness(Server(httpx.Response(429, headers={"Retry-After": "17"}), ok()))
    harness.client.get_json("Patient", resource_type="Patient")
    assert harness.clock.sleeps == [17.0]
    assert harness.records[0].retry_after_seconds == 17.0
    assert harness.client.counters.http_429 == 1


def test_retry_after_http_date_is_measured_from_the_server_date() -> None:
    server_now = NOW + timedelta(hours=3)  # the server's clock disagrees with ours
    headers = {
        "Date": format_datetime(server_now, usegmt=True),
        "Retry-After": format_datetime(server_now + timedelta(seconds=42), usegmt=True),
    }
    harness = Harness(Server(httpx.Response(503, headers=headers), ok()))
    harness.client.get_json("Patient", resource_type="Patient")
    assert harness.clock.sleeps == [42.0]


def test_a_retry_after_beyond_the_cap_stops_at_once() -> None:
    harness = Harness(Server(httpx.Response(429, headers={"Retry-After": "3600"}), ok()))
    with pytest.raises(RetriesExhausted, match=r"^Patient: the server asked to wait 3600 s"):
        harness.client.get_json("Patient", resource_type="Patient")
    assert harness.clock.sleeps == []
    assert len(harness.server.requests) == 1
    assert harness.outcomes == ["failed"]


def test_max_attempts_ends_with_retries_exhausted() -> None:
    harness = Harness(Server(httpx.Response(503)), retry=RetryPolicy(max_attempts=4))
    with pytest.raises(RetriesExhausted) as caught:
        harness.client.get_json("Patient", resource_type="Patient")
    assert str(caught.value).startswith("Patient: gave up after 4 attempts over ")
    assert str(caught.value).endswith("last: 503 Service Unavailable")
    assert len(harness.server.requests) == 4
    assert len(harness.clock.sleeps) == 3
    assert harness.outcomes == ["retry", "retry", "retry", "failed"]


def test_max_elapsed_ends_with_retries_exhausted() -> None:
    # Backoff alone (cap 4 s from the first retry) would need 4 waits to pass 10 s.
    policy = RetryPolicy(max_attempts=50, max_elapsed_seconds=10.0, base_delay=4.0, max_delay=4.0)
    harness = Harness(Server(httpx.Response(504)), retry=policy)
    with pytest.raises(RetriesExhausted, match=r"10 s budget\); last: 504 Gateway Timeout"):
        harness.client.get_json("Patient", resource_type="Patient")
    assert sum(harness.clock.sleeps) <= 10.0
    assert 3 <= len(harness.server.requests) < 50


@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
    ],
)
def test_timeouts_and_connection_errors_are_retried(error: Exception) -> None:
    harness = Harness(Server(error, error, ok()))
    response = harness.client.get_json("Patient", resource_type="Patient")
    assert response.attempts == 3
    assert [record.error_class for record in harness.records] == [
        type(error).__name__,
        type(error).__name__,
        None,
    ]
    assert harness.records[0].status is None


def test_transport_errors_exhaust_with_the_error_class() -> None:
    harness = Harness(Server(httpx.ConnectError("no route")), retry=RetryPolicy(max_attempts=3))
    with pytest.raises(RetriesExhausted, match=r"gave up after 3 attempts .*last: ConnectError$"):
        harness.client.get_json("Encounter", resource_type="Encounter")
    assert len(harness.server.requests) == 3


def test_500_is_not_retried_when_the_policy_says_so() -> None:
    harness = Harness(Server(httpx.Response(500)), retry=RetryPolicy(retry_500=False))
    with pytest.raises(RequestRejected, match=r"500 Internal Server Error"):
        harness.client.get_json("Patient", resource_type="Patient")
    assert len(harness.server.requests) == 1


# -- rejections ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 410, 422, 405, 501])
def test_client_errors_are_rejected_without_retry(status: int) -> None:
    body = outcome(("error", "invalid"), ("error", "not-found"), diagnostics="Zebulon")
    harness = Harness(Server(httpx.Response(status, json=body), ok()))
    with pytest.raises(RequestRejected) as caught:
        harness.client.get_json("Patient", {"name": "Zebulon"}, resource_type="Patient")
    message = str(caught.value)
    assert message.startswith(f"Patient: the server rejected GET Patient?name ({status} ")
    assert message.endswith("OperationOutcome issue codes: invalid, not-found")
    assert len(harness.server.requests) == 1
    assert harness.outcomes == ["failed"]
    assert harness.clock.sleeps == []


def test_a_redirect_is_rejected_not_followed() -> None:
    location = {"Location": "https://elsewhere.example/x"}
    harness = Harness(Server(httpx.Response(302, headers=location)))
    with pytest.raises(RequestRejected, match=r"unexpected redirect \(302 Found\)"):
        harness.client.get_json("Patient", resource_type="Patient")
    assert len(harness.server.requests) == 1


def test_an_operation_outcome_error_in_a_2xx_fails_fast() -> None:
    body = outcome(("warning", "informational"), ("error", "too-costly"), diagnostics="Zebulon")
    harness = Harness(Server(ok(body)))
    with pytest.raises(RequestRejected) as caught:
        harness.client.get_json("Observation", resource_type="Observation")
    assert "issue codes: too-costly)" in str(caught.value)
    assert "informational" not in str(caught.value)
    assert len(harness.server.requests) == 1


def test_an_operation_outcome_with_only_warnings_is_returned() -> None:
    body = outcome(("warning", "informational"))
    harness = Harness(Server(ok(body)))
    assert harness.client.get_json("metadata").body == body


# -- malformed bodies ----------------------------------------------------------------------


def test_invalid_json_is_retried_once_then_succeeds() -> None:
    harness = Harness(Server(httpx.Response(200, content=b'{"resourceType": "Bun'), ok()))
    response = harness.client.get_json("Patient", resource_type="Patient")
    assert response.attempts == 2
    assert harness.records[0].error_class == "JSONDecodeError"
    assert harness.outcomes == ["retry", "ok"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b'{"resourceType": "Bun', "JSONDecodeError"), (b"[1, 2]", "a JSON list, not an object")],
)
def test_invalid_json_twice_is_malformed(content: bytes, problem: str) -> None:
    harness = Harness(Server(httpx.Response(200, content=content)))
    with pytest.raises(MalformedResponseError) as caught:
        harness.client.get_json("Patient", resource_type="Patient")
    expected = f"Patient search page: response was not valid JSON ({len(content)} bytes, {problem})"
    assert str(caught.value) == expected
    assert len(harness.server.requests) == 2


# -- auth ----------------------------------------------------------------------------------


def _refreshing_auth(clock: FakeClock) -> tuple[ClientCredentials, list[str]]:
    issued: list[str] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        issued.append(f"tok-{len(issued) + 1}")
        body = {"access_token": issued[-1], "token_type": "bearer", "expires_in": 3600}
        return httpx.Response(200, json={**body, "scope": "system/Patient.rs"})

    auth = ClientCredentials(
        "https://auth.ehr.example/token",
        "elt-client",
        "secret-value",
        transport=httpx.MockTransport(token_endpoint),
        clock=clock,
        sleep=clock.sleep,
    )
    return auth, issued


def test_401_refreshes_the_token_and_retries_once() -> None:
    def fhir(request: httpx.Request) -> httpx.Response:
        good = request.headers["Authorization"] == "Bearer tok-2"
        return ok() if good else httpx.Response(401)

    clock = FakeClock()
    auth, issued = _refreshing_auth(clock)
    harness = Harness(Server(fhir), auth=auth)
    response = harness.client.get_json("Patient", resource_type="Patient")
    assert response.attempts == 2
    assert issued == ["tok-1", "tok-2"]
    assert harness.outcomes == ["auth_refresh", "ok"]
    assert harness.client.counters.token_refreshes == 2
    assert harness.clock.sleeps == []


def test_a_second_401_is_an_authentication_error() -> None:
    clock = FakeClock()
    auth, issued = _refreshing_auth(clock)
    harness = Harness(Server(httpx.Response(401)), auth=auth)
    with pytest.raises(AuthenticationError) as caught:
        harness.client.get_json("Patient", resource_type="Patient")
    assert str(caught.value) == (
        "Patient: the server refused a freshly issued token (401); check the client's "
        "registration and the token endpoint"
    )
    assert len(harness.server.requests) == 2
    assert issued == ["tok-1", "tok-2"]
    assert harness.outcomes == ["auth_refresh", "failed"]


def test_a_static_token_refused_twice_says_it_cannot_be_refreshed() -> None:
    harness = Harness(Server(httpx.Response(401)))
    with pytest.raises(AuthenticationError, match="cannot issue a new one"):
        harness.client.get_json("Patient", resource_type="Patient")
    assert len(harness.server.requests) == 2


def test_403_is_an_authorization_error_after_exactly_one_request() -> None:
    harness = Harness(Server(httpx.Response(403), ok()))
    with pytest.raises(AuthorizationError) as caught:
        harness.client.get_json("Observation", resource_type="Observation")
    assert str(caught.value) == (
        "Observation: access forbidden (403); the token's scopes (system/Patient.rs) do not "
        "cover system/Observation.rs or system/Observation.read"
    )
    assert len(harness.server.requests) == 1


# -- circuit breaker, pacing, concurrency --------------------------------------------------


def test_circuit_breaker_opens_after_n_consecutive_failures_per_type() -> None:
    breaker = CircuitBreaker(threshold=3)

    def by_type(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503) if request.url.path.endswith("/Patient") else ok()

    harness = Harness(Server(by_type), breaker=breaker, retry=RetryPolicy(max_attempts=10))
    with pytest.raises(CircuitOpenError) as caught:
        harness.client.get_json("Patient", resource_type="Patient")
    assert str(caught.value) == (
        "Patient: stopped after 3 consecutive failed requests; last: 503 Service Unavailable"
    )
    assert len(harness.server.requests) == 3
    # Later calls for that type fail without a request; other types are unaffected.
    with pytest.raises(CircuitOpenError):
        harness.client.get_json("Patient", resource_type="Patient")
    assert len(harness.server.requests) == 3
    harness.client.get_json("Observation", resource_type="Observation")
    assert len(harness.server.requests) == 4


def test_circuit_breaker_success_resets_the_count_but_open_stays_open() -> None:
    breaker = CircuitBreaker(threshold=2)
    breaker.record_failure("Patient", "503")
    breaker.record_success("Patient")
    breaker.record_failure("Patient", "503")
    breaker.check("Patient")  # one failure since the success: still closed
    assert not breaker.is_open("Patient")
    breaker.record_failure("Patient", "ReadTimeout")
    assert breaker.is_open("Patient")
    breaker.record_success("Patient")
    with pytest.raises(CircuitOpenError, match=r"failed requests; last: ReadTimeout$"):
        breaker.check("Patient")  # no half-open: stays open for the run
    breaker.check("Observation")


def test_429_does_not_count_towards_the_breaker() -> None:
    throttled = [httpx.Response(429, headers={"Retry-After": "1"})] * 5
    harness = Harness(Server(*throttled, ok()), breaker=CircuitBreaker(threshold=2))
    assert harness.client.get_json("Patient", resource_type="Patient").attempts == 6


def test_requests_wait_for_the_token_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock=clock, sleep=clock.sleep)
    harness = Harness(Server(ok()), bucket=bucket, auth=None)
    for _ in range(3):
        harness.client.get_json("metadata")
    assert clock.sleeps == pytest.approx([0.5, 0.5])
    assert "Authorization" not in harness.server.requests[0].headers


def test_requests_queued_behind_slow_ones_do_not_leave_in_a_burst() -> None:
    # Two slow requests hold both slots and finish together; the two queued behind them must
    # still be sent at least 1/rate apart (real time, about 0.5 s).
    rate = 10.0
    release = threading.Event()
    sent: list[float] = []
    lock = threading.Lock()

    def server(request: httpx.Request) -> httpx.Response:
        with lock:
            sent.append(time.monotonic())
            first_two = len(sent) <= 2
        if first_two:
            release.wait(timeout=5)
        return ok()

    client = FhirHttpClient(
        BASE,
        None,
        bucket=TokenBucket(rate),
        max_concurrency=2,
        transport=httpx.MockTransport(server),
    )
    threads = [threading.Thread(target=client.get_json, args=("Patient",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    release.set()
    for thread in threads:
        thread.join()
    sent.sort()
    assert len(sent) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert min(gaps) >= 1 / rate - 0.01, gaps


def test_no_more_than_max_concurrency_requests_in_flight() -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.02)
        with lock:
            in_flight -= 1
        return ok()

    harness = Harness(Server(slow), max_concurrency=2)
    threads = [
        threading.Thread(target=harness.client.get_json, args=("Patient",)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2
    assert harness.client.counters.requests == 8


# -- streaming -----------------------------------------------------------------------------


class _BrokenStream(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield b'{"resourceType":"Patient","id":"partial"}\n'
        raise httpx.ReadError("connection reset by peer")


def test_stream_to_restarts_the_write_from_scratch_on_retry() -> None:
    full = b"".join(b'{"resourceType":"Observation","id":"%d"}\n' % i for i in range(5000))
    harness = Harness(
        Server(
            httpx.Response(200, stream=_BrokenStream()),
            httpx.Response(503),
            httpx.Response(200, content=full),
        )
    )
    sink = io.BytesIO()
    written = harness.client.stream_to(
        f"{BASE}/bulk/file-1.ndjson", None, sink, resource_type="Observation"
    )
    assert written == len(full)
    assert sink.getvalue() == full
    assert harness.server.requests[0].headers["Accept"] == "application/fhir+ndjson"
    assert harness.outcomes == ["retry", "retry", "ok"]
    assert harness.records[0].error_class == "ReadError"


def test_stream_to_leaves_the_sink_empty_after_a_final_failure() -> None:
    harness = Harness(
        Server(lambda request: httpx.Response(200, stream=_BrokenStream())),
        retry=RetryPolicy(max_attempts=2),
    )
    sink = io.BytesIO(b"old content")
    with pytest.raises(RetriesExhausted, match="last: ReadError"):
        harness.client.stream_to("bulk/file-1.ndjson", None, sink, resource_type="Observation")
    assert sink.getvalue() == b""


def test_stream_to_needs_a_seekable_sink() -> None:
    class Pipe(io.RawIOBase):
        def writable(self) -> bool:
            return True

    harness = Harness(Server(ok()))
    with pytest.raises(ConfigError, match="seekable"):
        harness.client.stream_to("bulk/x", None, Pipe())  # type: ignore[arg-type]


# -- configuration -------------------------------------------------------------------------


def test_timeouts_map_to_httpx() -> None:
    timeout = Timeouts().to_httpx()
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (30, 120, 60, 60)


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("ftp://ehr.example/fhir", "absolute http"),
        ("/fhir", "absolute http"),
        ("https://user:pw@ehr.example/fhir", "credentials"),
        ("https://ehr.example/fhir?x=1", "query"),
    ],
)
def test_base_url_validation(base_url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        FhirHttpClient(base_url)
    assert "pw" not in str(caught.value)


def test_context_manager_closes_the_pool() -> None:
    with Harness(Server(ok())).client as client:
        client.get_json("metadata")
    with pytest.raises(RuntimeError):
        client.get_json("metadata")


# -- PHI canary ----------------------------------------------------------------------------

CANARIES = ("CANARY-123", "Zebulon")
CANARY_URL = "Patient?patient=Patient/CANARY-123&name=Zebulon"


def _echo(status: int) -> Callable[[httpx.Request], httpx.Response]:
    """A server that quotes the request back in its error body, as some servers do."""

    def answer(request: httpx.Request) -> httpx.Response:
        diagnostics = f"bad request {request.url} for Zebulon, id CANARY-123"
        return httpx.Response(
            status, json=outcome(("error", "processing"), diagnostics=diagnostics)
        )

    return answer


def _raise_with_url(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout(f"timed out reading {request.url}", request=request)


CANARY_SCENARIOS: dict[str, list[Answer]] = {
    "400": [_echo(400)],
    "404": [_echo(404)],
    "410": [_echo(410)],
    "422": [_echo(422)],
    "403": [_echo(403)],
    "401 twice": [_echo(401)],
    "503 until exhausted": [_echo(503)],
    "500 until exhausted": [_echo(500)],
    "timeouts quoting the url": [_raise_with_url],
    "retry-after too long": [httpx.Response(429, headers={"Retry-After": "99999"})],
    "malformed json quoting the patient": [
        httpx.Response(200, content=b'{"resourceType":"Patient","name":"Zebulon","id":"CANARY-1')
    ],
    "operation outcome in a 200": [_echo(200)],
    "redirect to the patient": [
        httpx.Response(302, headers={"Location": f"{BASE}/Patient/CANARY-123?name=Zebulon"})
    ],
}


def _chain_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


@pytest.mark.parametrize("scenario", sorted(CANARY_SCENARIOS))
@pytest.mark.parametrize("as_params", [False, True], ids=["in-url", "in-params"])
def test_no_patient_data_in_exceptions_logs_or_records(
    scenario: str, as_params: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    auth, _ = _refreshing_auth(clock)
    harness = Harness(
        Server(*CANARY_SCENARIOS[scenario]),
        auth=auth,
        retry=RetryPolicy(max_attempts=3),
        breaker=CircuitBreaker(threshold=100),
    )
    if as_params:
        call = ("Patient", {"patient": "Patient/CANARY-123", "name": "Zebulon"})
    else:
        call = (CANARY_URL, None)
    with pytest.raises(ExtractError) as caught:
        harness.client.get_json(call[0], call[1], resource_type="Patient")
    sent = str(harness.server.requests[0].url)
    assert "CANARY-123" in sent and "Zebulon" in sent  # the canaries really were sent
    assert caplog.records, "nothing was logged: the log check would be vacuous"
    assert any(record.name == "httpx" for record in caplog.records)
    texts = {
        "exception": _chain_text(caught.value) + repr(caught.value),
        "logs": "\n".join(
            record.getMessage() + (record.exc_text or "") for record in caplog.records
        ),
        "records": "\n".join(repr(record) for record in harness.records),
    }
    assert harness.records
    for where, text in texts.items():
        for canary in CANARIES:
            assert canary not in text, f"{canary} leaked into {where} ({scenario})"


def test_canary_in_a_foreign_paging_link_is_not_echoed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    harness = Harness(Server(ok()))
    with pytest.raises(RequestRejected) as caught:
        harness.client.get_json(
            "https://evil.example/Patient/CANARY-123?name=Zebulon", resource_type="Patient"
        )
    assert "evil.example" in str(caught.value)
    for canary in CANARIES:
        assert canary not in _chain_text(caught.value)
