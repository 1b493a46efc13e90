"""Token providers: caching, early refresh, one refresh for many workers, SMART assertions."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from loaders.exceptions import (
    AuthenticationError,
    ConfigError,
    MalformedResponseError,
    RetriesExhausted,
)
from loaders.http.auth import (
    CLIENT_ASSERTION_TYPE,
    ClientCredentials,
    SmartBackendServices,
    StaticToken,
    TokenProvider,
)

TOKEN_URL = "https://auth.ehr.example/oauth2/token"
JWKS_URL = "https://keys.fhir-elt.example/jwks.json"
SECRET = "s3cr3t/with+odd=chars"
WALL = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 10.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class TokenEndpoint:
    """A token endpoint that answers from a script and records what it was sent."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[], httpx.Response]):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.issued = 0
        self.lock = threading.Lock()

    def token(self, expires_in: int = 3600, scope: str | None = None) -> httpx.Response:
        with self.lock:
            self.issued += 1
            number = self.issued
        body: dict[str, object] = {
            "access_token": f"token-{number}",
            "token_type": "Bearer",
            "expires_in": expires_in,
        }
        if scope is not None:
            body["scope"] = scope
        return httpx.Response(200, json=body)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            return self.token()
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer()
        return answer

    def form(self, index: int = -1) -> dict[str, str]:
        parsed = parse_qs(self.requests[index].content.decode(), keep_blank_values=True)
        return {key: values[0] for key, values in parsed.items()}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _client_credentials(
    endpoint: TokenEndpoint, clock: FakeClock | None = None, **kwargs: object
) -> ClientCredentials:
    clock = clock or FakeClock()
    options: dict[str, object] = {
        "scope": "system/Patient.rs",
        "transport": httpx.MockTransport(endpoint),
        "clock": clock,
        "sleep": clock.sleep,
    }
    options.update(kwargs)
    return ClientCredentials(TOKEN_URL, "elt-client", SECRET, **options)  # type: ignore[arg-type]


def _smart(
    endpoint: TokenEndpoint,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    algorithm: str,
    **kwargs: object,
) -> SmartBackendServices:
    clock = FakeClock()
    options: dict[str, object] = {
        "scope": "system/Patient.rs system/Observation.rs",
        "transport": httpx.MockTransport(endpoint),
        "clock": clock,
        "sleep": clock.sleep,
        "wall_clock": lambda: WALL,
    }
    options.update(kwargs)
    kid = options.pop("kid", "key-1")
    return SmartBackendServices(
        TOKEN_URL,
        "elt-backend",
        _pem(key),
        kid,  # type: ignore[arg-type]
        algorithm,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


# -- StaticToken ---------------------------------------------------------------------------


def test_static_token_is_a_token_provider_that_never_refreshes() -> None:
    provider = StaticToken("abc123", scope="system/*.rs")
    assert isinstance(provider, TokenProvider)
    provider.invalidate("abc123")
    assert provider.get_token() == "abc123"
    assert provider.refreshes == 0
    assert provider.granted_scope == "system/*.rs"
    assert "abc123" not in repr(provider)


# -- ClientCredentials ---------------------------------------------------------------------


def test_client_secret_basic_sends_form_urlencoded_credentials_in_the_header() -> None:
    endpoint = TokenEndpoint()
    provider = _client_credentials(endpoint, auth_method="basic")
    assert provider.get_token() == "token-1"
    request = endpoint.requests[0]
    scheme, _, encoded = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "elt-client:s3cr3t%2Fwith%2Bodd%3Dchars"
    form = endpoint.form()
    assert form == {"grant_type": "client_credentials", "scope": "system/Patient.rs"}
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_client_secret_post_sends_credentials_in_the_body() -> None:
    endpoint = TokenEndpoint()
    provider = _client_credentials(endpoint, auth_method="post")
    provider.get_token()
    assert "Authorization" not in endpoint.requests[0].headers
    assert endpoint.form() == {
        "grant_type": "client_credentials",
        "scope": "system/Patient.rs",
        "client_id": "elt-client",
        "client_secret": SECRET,
    }


def test_token_is_cached_and_refreshed_ahead_of_expiry() -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint()
    provider = _client_credentials(endpoint, clock)
    start = clock.now
    assert provider.get_token() == "token-1"
    # Lifetime 3600 s: the default margin is max(30 s, 10%) = 360 s.
    clock.now = start + 3600 - 361
    assert provider.get_token() == "token-1"
    assert len(endpoint.requests) == 1
    clock.now = start + 3600 - 359
    assert provider.get_token() == "token-2"
    assert provider.refreshes == 2
    assert len(endpoint.requests) == 2


def test_short_lived_tokens_use_the_30_second_floor_and_explicit_margins() -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(lambda: endpoint.token(expires_in=100))
    provider = _client_credentials(endpoint, clock)
    provider.get_token()
    clock.now += 69
    assert provider.get_token() == "token-1"
    clock.now += 2  # 71 s in: less than 30 s left
    assert provider.get_token() == "token-2"

    clock2 = FakeClock()
    endpoint2 = TokenEndpoint()
    explicit = _client_credentials(endpoint2, clock2, refresh_margin=5.0)
    explicit.get_token()
    clock2.now += 3594
    assert explicit.get_token() == "token-1"
    clock2.now += 2
    assert explicit.get_token() == "token-2"


def test_concurrent_workers_cause_one_fetch_and_one_refresh_not_many() -> None:
    def slow_token() -> httpx.Response:
        time.sleep(0.05)  # a slow token endpoint widens the race window
        return endpoint.token()

    endpoint = TokenEndpoint(*[slow_token] * 20)
    provider = _client_credentials(endpoint, clock=FakeClock())
    barrier = threading.Barrier(8)
    seen: list[str] = []

    def first_use() -> None:
        barrier.wait()
        seen.append(provider.get_token())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["token-1"] * 8
    assert provider.refreshes == 1

    # Eight workers all get a 401 with token-1 and invalidate it: one refresh, not eight.
    def after_401() -> None:
        barrier.wait()
        provider.invalidate("token-1")
        seen.append(provider.get_token())

    seen.clear()
    threads = [threading.Thread(target=after_401) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["token-2"] * 8
    assert provider.refreshes == 2
    assert len(endpoint.requests) == 2


def test_invalidate_ignores_a_token_that_is_no_longer_cached() -> None:
    endpoint = TokenEndpoint()
    provider = _client_credentials(endpoint)
    assert provider.get_token() == "token-1"
    provider.invalidate("token-0")
    assert provider.get_token() == "token-1"
    provider.invalidate("token-1")
    assert provider.get_token() == "token-2"


def test_token_endpoint_5xx_429_and_resets_are_retried() -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(
        httpx.Response(503),
        httpx.ConnectError("connection refused"),
        httpx.Response(429, headers={"Retry-After": "7"}),
    )
    provider = _client_credentials(endpoint, clock)
    assert provider.get_token() == "token-1"
    assert len(endpoint.requests) == 4
    assert len(clock.sleeps) == 3
    assert clock.sleeps[2] == 7.0


def test_granted_scope_comes_from_the_token_response() -> None:
    endpoint = TokenEndpoint(lambda: endpoint.token(scope="system/Patient.read"))
    provider = _client_credentials(endpoint)
    provider.get_token()
    assert provider.granted_scope == "system/Patient.read"


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (401, "invalid_client", "invalid_client (check the client id and its registered key"),
        (400, "invalid_scope", "invalid_scope (the client is not allowed scope 'system/Patient"),
        (400, "invalid_grant", "invalid_grant (the grant or client assertion was refused"),
        (400, "mystery_code", "mystery_code (an error code fhir-elt does not know)"),
    ],
)
def test_oauth_errors_name_the_code_and_a_fixed_explanation(
    status: int, error: str, expected: str
) -> None:
    body = {"error": error, "error_description": f"client secret {SECRET} for Zebulon is bad"}
    endpoint = TokenEndpoint(httpx.Response(status, json=body))
    provider = _client_credentials(endpoint)
    with pytest.raises(AuthenticationError) as caught:
        provider.get_token()
    message = str(caught.value)
    assert message.startswith("token endpoint refused client elt-client: ")
    assert expected in message
    assert "Zebulon" not in message
    assert SECRET not in message
    assert len(endpoint.requests) == 1  # not retried


def test_non_oauth_refusals_give_the_status() -> None:
    endpoint = TokenEndpoint(httpx.Response(403, text="<html>nope</html>"))
    with pytest.raises(AuthenticationError, match=r"refused client elt-client: HTTP 403$"):
        _client_credentials(endpoint).get_token()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"token_type": "Bearer"}),
        httpx.Response(200, json={"access_token": "x", "token_type": "mac"}),
    ],
)
def test_a_200_that_is_not_a_bearer_token_is_malformed(response: httpx.Response) -> None:
    with pytest.raises(MalformedResponseError, match="token endpoint for client elt-client"):
        _client_credentials(TokenEndpoint(response)).get_token()


def test_secrets_and_tokens_never_reach_logs_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = TokenEndpoint(httpx.Response(503))
    provider = _client_credentials(endpoint)
    token = provider.get_token()
    provider.invalidate(token)
    provider.get_token()
    assert caplog.records  # something was logged: the check below is not vacuous
    text = "\n".join(record.getMessage() for record in caplog.records) + repr(provider)
    assert "elt-client" in text
    for secret in (SECRET, "token-1", "token-2"):
        assert secret not in text


def test_client_credentials_validation() -> None:
    with pytest.raises(ConfigError, match="client_secret is empty"):
        ClientCredentials(TOKEN_URL, "elt-client", "")
    with pytest.raises(ConfigError, match="auth_method"):
        ClientCredentials(TOKEN_URL, "elt-client", SECRET, auth_method="jwt")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="token_url"):
        ClientCredentials("ftp://x", "elt-client", SECRET)


# -- SMART Backend Services ----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_smart_assertion_verifies_with_the_public_key_and_has_the_right_claims(
    algorithm: str,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    key = rsa_key if algorithm == "RS384" else ec_key
    endpoint = TokenEndpoint()
    provider = _smart(endpoint, key, algorithm)
    assert provider.get_token() == "token-1"
    form = endpoint.form()
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "system/Patient.rs system/Observation.rs"
    assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    assertion = form["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    assert header == {"alg": algorithm, "kid": "key-1", "typ": "JWT"}
    claims = jwt.decode(
        assertion,
        key.public_key(),
        algorithms=[algorithm],
        audience=TOKEN_URL,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == "elt-backend"
    assert claims["aud"] == TOKEN_URL
    assert claims["iat"] == int(WALL)
    assert claims["exp"] == int(WALL) + 300
    assert len(claims["jti"]) == 32
    int(claims["jti"], 16)
    # A different key of the same type must not verify it.
    other = other_rsa_key if algorithm == "RS384" else ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(assertion, other.public_key(), algorithms=[algorithm], audience=TOKEN_URL)


def test_each_assertion_has_a_fresh_jti(rsa_key: rsa.RSAPrivateKey) -> None:
    provider = _smart(TokenEndpoint(), rsa_key, "RS384")
    first = jwt.decode(provider.client_assertion(), options={"verify_signature": False})
    second = jwt.decode(provider.client_assertion(), options={"verify_signature": False})
    assert first["jti"] != second["jti"]


@pytest.mark.parametrize(
    ("algorithm", "key_name", "message"),
    [
        ("ES384", "rsa", "algorithm ES384 needs an EC P-384 private key, got RSA"),
        ("RS384", "ec", "algorithm RS384 needs an RSA private key, got EC secp384r1"),
        ("ES384", "ec256", "algorithm ES384 needs an EC P-384 private key, got EC secp256r1"),
    ],
)
def test_key_type_must_match_the_algorithm(
    algorithm: str,
    key_name: str,
    message: str,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    keys = {"rsa": rsa_key, "ec": ec_key, "ec256": ec.generate_private_key(ec.SECP256R1())}
    pem = _pem(keys[key_name])
    with pytest.raises(ConfigError) as caught:
        _smart(TokenEndpoint(), keys[key_name], algorithm)
    assert message in str(caught.value)
    assert "PRIVATE KEY" not in str(caught.value)
    assert pem.decode().splitlines()[1][:20] not in str(caught.value)


def test_unreadable_or_weak_keys_are_refused_without_quoting_them() -> None:
    garbage = b"-----BEGIN PRIVATE KEY-----\nWmVidWxvbg==\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigError, match="not a usable unencrypted PEM") as caught:
        SmartBackendServices(TOKEN_URL, "elt-backend", garbage, "k", scope="system/*.rs")
    assert "WmVidWxvbg" not in str(caught.value)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match="at least 2048 bits, got 1024"):
        SmartBackendServices(TOKEN_URL, "elt-backend", _pem(weak), "k", scope="system/*.rs")


def test_kid_or_jwks_url_is_required(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ConfigError, match="needs a kid, or a jwks_url"):
        SmartBackendServices(TOKEN_URL, "elt-backend", _pem(rsa_key), None, scope="system/*.rs")


def _jwk(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, **fields: str) -> dict[str, str]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPublicKey) else ECAlgorithm
    return {**json.loads(algorithm.to_jwk(key)), **fields}


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_kid_is_found_in_the_jwks_by_matching_public_key(
    algorithm: str,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    other_ec = ec.generate_private_key(ec.SECP384R1())
    jwks = {
        "keys": [
            _jwk(other_rsa_key.public_key(), kid="rsa-other", alg="RS384"),
            _jwk(other_ec.public_key(), kid="ec-other", alg="ES384"),
            _jwk(rsa_key.public_key(), kid="rsa-mine-enc", alg="RS384", use="enc"),
            _jwk(rsa_key.public_key(), kid="rsa-mine-rs256", alg="RS256"),
            _jwk(rsa_key.public_key(), kid="rsa-mine", alg="RS384"),
            _jwk(ec_key.public_key(), kid="ec-mine", alg="ES384"),
            {"kty": "RSA", "kid": "broken", "n": "???"},
        ]
    }

    tokens = TokenEndpoint()

    def route(request: httpx.Request) -> httpx.Response:
        if request.url == JWKS_URL:
            return httpx.Response(200, json=jwks)
        return tokens(request)

    key = rsa_key if algorithm == "RS384" else ec_key
    provider = _smart(
        tokens, key, algorithm, kid=None, jwks_url=JWKS_URL, transport=httpx.MockTransport(route)
    )
    provider.get_token()
    expected = "rsa-mine" if algorithm == "RS384" else "ec-mine"
    assert provider.kid == expected
    assert jwt.get_unverified_header(tokens.form()["client_assertion"])["kid"] == expected


def test_no_matching_jwks_key_is_a_config_error(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks = {"keys": [_jwk(other_rsa_key.public_key(), kid="rsa-other")]}
    provider = _smart(
        TokenEndpoint(),
        rsa_key,
        "RS384",
        kid=None,
        jwks_url=JWKS_URL,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=jwks)),
    )
    with pytest.raises(ConfigError, match=r"no key in the JWKS at keys.fhir-elt.example matches"):
        provider.get_token()


def test_smart_repr_and_errors_hide_the_key(rsa_key: rsa.RSAPrivateKey) -> None:
    provider = _smart(
        TokenEndpoint(httpx.Response(401, json={"error": "invalid_client"})), rsa_key, "RS384"
    )
    assert "elt-backend" in repr(provider)
    assert "PRIVATE" not in repr(provider)
    with pytest.raises(AuthenticationError, match="refused client elt-backend: invalid_client"):
        provider.get_token()


def test_token_endpoint_retries_are_bounded() -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint(*[httpx.Response(503)] * 10)
    provider = _client_credentials(endpoint, clock)
    with pytest.raises(RetriesExhausted) as caught:
        provider.get_token()
    assert str(caught.value).startswith("token endpoint for client elt-client: gave up after 5")
    assert str(caught.value).endswith("last: 503")
    assert len(endpoint.requests) == 5


def test_close_releases_the_pool_and_a_later_fetch_reopens_it() -> None:
    endpoint = TokenEndpoint()
    provider = _client_credentials(endpoint)
    assert provider.get_token() == "token-1"
    provider.close()
    provider.invalidate("token-1")
    assert provider.get_token() == "token-2"
