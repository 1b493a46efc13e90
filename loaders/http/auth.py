"""Access tokens for FHIR servers: static, OAuth client credentials, SMART Backend Services.

Every provider implements :class:`TokenProvider`:

* ``get_token()`` returns the cached token, fetching a new one first when less than the
  refresh margin is left (default ``max(30 s, 10% of the token's lifetime)``, never more than
  half of it). The fetch happens under the provider's lock, so concurrent workers that find
  the token stale wait for one fetch instead of starting one each.
* ``invalidate(token)`` forces a fetch on the next ``get_token()``, but only if ``token`` is
  still the cached one: when four workers get a 401 with the same expired token, the first
  invalidation causes one refresh and the other three are no-ops.
* ``refreshes`` counts tokens obtained from the endpoint (the first one included).

Token endpoint calls retry 429, 5xx and transport errors under a :class:`RetryPolicy`. An
OAuth error answer (400/401 with ``{"error": ...}``) raises :class:`AuthenticationError` with
the error code and a fixed explanation of it; the server's ``error_description`` is not
repeated. Secrets, private keys, assertions and tokens appear in no log line, message or repr.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote_plus

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from loaders.exceptions import AuthenticationError, ConfigError, MalformedResponseError
from loaders.http.retry import RetryPolicy, RetrySchedule, parse_http_date, parse_retry_after

logger = logging.getLogger(__name__)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_TOKEN_RETRY = RetryPolicy(max_attempts=5, max_elapsed_seconds=120.0)
# Assumed when the token endpoint omits ``expires_in`` (a 401 still triggers a refresh).
DEFAULT_LIFETIME_SECONDS = 300.0
MAX_ASSERTION_LIFETIME_SECONDS = 300

_OAUTH_ERROR_EXPLANATIONS: dict[str, str] = {
    "invalid_request": (
        "the token request is malformed; check the client authentication method and the "
        "parameters it sends"
    ),
    "invalid_client": "check the client id and its registered key/secret",
    "invalid_grant": (
        "the grant or client assertion was refused; check the key id (kid), that the token "
        "URL is the assertion's audience, and this machine's clock"
    ),
    "unauthorized_client": "the client is not allowed to use the client_credentials grant",
    "unsupported_grant_type": "the token endpoint does not accept the client_credentials grant",
    "invalid_scope": "the client is not allowed scope '{scope}'",
    "access_denied": "the authorization server denied the client",
    "server_error": "the authorization server failed; try again later",
    "temporarily_unavailable": "the authorization server is temporarily unavailable",
}


@runtime_checkable
class TokenProvider(Protocol):
    """What :class:`~loaders.http.client.FhirHttpClient` needs from an auth method."""

    @property
    def refreshes(self) -> int:
        """Tokens obtained from the endpoint so far."""
        ...

    @property
    def granted_scope(self) -> str | None:
        """The scopes of the current token, when known (for 403 messages)."""
        ...

    def get_token(self) -> str:
        """A valid access token (cached; refreshed ahead of expiry)."""
        ...

    def invalidate(self, token: str) -> None:
        """Force a refresh on next use, if ``token`` is still the cached one."""
        ...


class StaticToken:
    """A fixed token (a developer's token, or a server without OAuth). Cannot be refreshed."""

    def __init__(self, token: str, scope: str | None = None) -> None:
        if not token:
            raise ConfigError("StaticToken needs a non-empty token")
        self._token = token
        self._scope = scope

    @property
    def refreshes(self) -> int:
        """Always 0: a static token is never refreshed."""
        return 0

    @property
    def granted_scope(self) -> str | None:
        """The scope given at construction, if any."""
        return self._scope

    def get_token(self) -> str:
        """The token."""
        return self._token

    def invalidate(self, token: str) -> None:
        """Nothing to do: the next 401 ends the request with :class:`AuthenticationError`."""

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


@dataclass(frozen=True, slots=True)
class _IssuedToken:
    access_token: str
    lifetime_seconds: float
    scope: str | None

    def __repr__(self) -> str:
        return f"_IssuedToken(<redacted>, lifetime_seconds={self.lifetime_seconds})"


class _OAuthTokenProvider:
    """Caching, refresh timing, locking and the token-endpoint exchange shared by OAuth flows."""

    _flow = "OAuth client"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        scope: str | None,
        *,
        refresh_margin: float | None,
        retry: RetryPolicy,
        timeout: float,
        transport: httpx.BaseTransport | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rng: random.Random | None,
        user_agent: str,
    ) -> None:
        if not client_id:
            raise ConfigError(f"{self._flow}: client_id is empty")
        url = httpx.URL(token_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"{self._flow} {client_id}: token_url is not an http(s) URL")
        if refresh_margin is not None and refresh_margin < 0:
            raise ConfigError(f"{self._flow} {client_id}: refresh_margin must not be negative")
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope
        self._refresh_margin = refresh_margin
        self._retry = retry
        self._timeout = timeout
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._user_agent = user_agent
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._refreshes = 0
        self._granted_scope: str | None = None
        self._http_lock = threading.Lock()
        self._http: httpx.Client | None = None

    # -- the TokenProvider interface ------------------------------------------------------

    # Plain reads, no lock: the lock is held for whole token fetches (retries included), and
    # counters or error messages must not wait for one.

    @property
    def refreshes(self) -> int:
        """Tokens obtained from the endpoint so far (the first one included)."""
        return self._refreshes

    @property
    def granted_scope(self) -> str | None:
        """The scope the endpoint granted with the current token (or the one requested)."""
        return self._granted_scope

    def get_token(self) -> str:
        """The cached token, refreshed first when less than the refresh margin is left."""
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                requested_at = self._clock()
                issued = self._fetch_token()
                lifetime = issued.lifetime_seconds
                margin = (
                    self._refresh_margin
                    if self._refresh_margin is not None
                    else max(30.0, 0.1 * lifetime)
                )
                margin = min(margin, lifetime / 2)
                self._token = issued.access_token
                self._refresh_at = requested_at + lifetime - margin
                self._refreshes += 1
                self._granted_scope = issued.scope or self.scope
                logger.info(
                    "%s %s: new access token, valid %.0f s, refreshed %.0f s before expiry",
                    self._flow,
                    self.client_id,
                    lifetime,
                    margin,
                )
            return self._token

    def invalidate(self, token: str) -> None:
        """Drop the cached token if it is still ``token`` (a 401 proved it dead)."""
        with self._lock:
            if self._token is not None and self._token == token:
                self._token = None
                logger.info("%s %s: access token refused; will refresh", self._flow, self.client_id)

    def close(self) -> None:
        """Close the connection pool used for the token endpoint (reopened if needed)."""
        with self._http_lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def __repr__(self) -> str:
        host = httpx.URL(self.token_url).host
        return f"{type(self).__name__}(client_id={self.client_id!r}, token_host={host!r})"

    # -- for subclasses -------------------------------------------------------------------

    def _token_request(self, http: httpx.Client) -> httpx.Response:
        """POST the flow's token request."""
        raise NotImplementedError

    def _label(self) -> str:
        return f"token endpoint for client {self.client_id}"

    def _fetch_token(self) -> _IssuedToken:
        response = self._call(self._token_request)
        return self._parse_token_response(response)

    def _call(self, send: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
        """``send`` with retries for 429, 5xx and transport errors; other answers returned."""
        schedule = RetrySchedule(self._retry, label=self._label(), clock=self._clock, rng=self._rng)
        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(
                    transport=self._transport,
                    timeout=self._timeout,
                    headers={"User-Agent": self._user_agent},
                )
            http = self._http
        while True:
            attempt = schedule.start_attempt()
            retry_after: float | None = None
            try:
                response = send(http)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                last = type(exc).__name__
            else:
                if not self._retry.retries_status(response.status_code):
                    return response
                last = str(response.status_code)
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), _server_now(response)
                )
            delay = schedule.next_delay(last, retry_after)
            logger.warning(
                "%s: %s on attempt %d; retrying in %.1f s", self._label(), last, attempt, delay
            )
            self._sleep(delay)

    def _parse_token_response(self, response: httpx.Response) -> _IssuedToken:
        status = response.status_code
        body = _json_object(response.content)
        if response.is_success:
            if body is None:
                raise MalformedResponseError(
                    f"{self._label()}: response was not a JSON object ({len(response.content)} "
                    "bytes)"
                )
            access_token = body.get("access_token")
            if not isinstance(access_token, str) or not access_token:
                raise MalformedResponseError(f"{self._label()}: response had no access_token")
            token_type = body.get("token_type")
            if token_type is not None and str(token_type).lower() != "bearer":
                raise MalformedResponseError(f"{self._label()}: token_type is not 'bearer'")
            scope = body.get("scope")
            return _IssuedToken(
                access_token=access_token,
                lifetime_seconds=_lifetime(body.get("expires_in")),
                scope=scope if isinstance(scope, str) else None,
            )
        error = body.get("error") if body is not None else None
        if status in (400, 401) and isinstance(error, str):
            raise AuthenticationError(
                f"token endpoint refused client {self.client_id}: {self._explain(error)}"
            )
        raise AuthenticationError(f"token endpoint refused client {self.client_id}: HTTP {status}")

    def _explain(self, error: str) -> str:
        explanation = _OAUTH_ERROR_EXPLANATIONS.get(error)
        if explanation is None:
            # The code is the server's text: show it only if it looks like an OAuth code.
            code = error if error.isascii() and error.replace("_", "").isalpha() else "error"
            return f"{code[:64]} (an error code fhir-elt does not know)"
        return f"{error} ({explanation.format(scope=self.scope or '')})"


class ClientCredentials(_OAuthTokenProvider):
    """OAuth 2.0 client credentials grant with a client secret.

    Args:
        token_url: The token endpoint.
        client_id: The registered client id.
        client_secret: The client secret (never logged or shown).
        scope: Scopes to request, space-separated, or None to let the server decide.
        auth_method: ``basic`` (HTTP Basic, id and secret form-urlencoded first as RFC 6749
            section 2.3.1 says) or ``post`` (both in the form body).
        refresh_margin: Seconds before expiry to refresh; default ``max(30, 10% of lifetime)``.
        retry: Retry policy for the token endpoint.
        timeout: Seconds for each token endpoint call.
        transport: An httpx transport (tests).
        clock: Monotonic clock (tests).
        sleep: Sleep function (tests).
        rng: Random source for backoff jitter (tests).
        user_agent: The User-Agent header.
    """

    _flow = "OAuth client"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        auth_method: Literal["basic", "post"] = "basic",
        *,
        refresh_margin: float | None = None,
        retry: RetryPolicy = DEFAULT_TOKEN_RETRY,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        user_agent: str = "fhir-elt",
    ) -> None:
        super().__init__(
            token_url,
            client_id,
            scope,
            refresh_margin=refresh_margin,
            retry=retry,
            timeout=timeout,
            transport=transport,
            clock=clock,
            sleep=sleep,
            rng=rng,
            user_agent=user_agent,
        )
        if not client_secret:
            raise ConfigError(f"OAuth client {client_id}: client_secret is empty")
        if auth_method not in ("basic", "post"):
            raise ConfigError(
                f"OAuth client {client_id}: auth_method must be 'basic' or 'post', "
                f"not {auth_method!r}"
            )
        self._client_secret = client_secret
        self.auth_method = auth_method

    def _token_request(self, http: httpx.Client) -> httpx.Response:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        headers = {"Accept": "application/json"}
        if self.auth_method == "basic":
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self._client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = self._client_secret
        return http.post(self.token_url, data=form, headers=headers)


class SmartBackendServices(_OAuthTokenProvider):
    """SMART Backend Services: client credentials with a signed JWT client assertion.

    Args:
        token_url: The token endpoint (also the assertion's ``aud``).
        client_id: The registered client id (``iss`` and ``sub``).
        private_key_pem: The unencrypted PEM private key; RSA (2048 bits or more) for RS384,
            EC P-384 for ES384. Checked against ``algorithm`` here, never shown.
        kid: The key id registered with the server. If None, ``jwks_url`` must be given and
            the key id is taken from the JWKS entry whose public key matches this private key.
        algorithm: ``RS384`` or ``ES384``.
        scope: Scopes to request, e.g. ``system/Patient.rs system/Observation.rs``.
        jwks_url: The client's published JWKS, used only to find ``kid``.
        assertion_lifetime_seconds: The assertion's ``exp - iat`` (at most 300).
        wall_clock: Seconds since the epoch, for ``iat``/``exp`` (tests).
        **Other keyword arguments** as in :class:`ClientCredentials`.
    """

    _flow = "SMART backend client"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        private_key_pem: str | bytes,
        kid: str | None = None,
        algorithm: Literal["RS384", "ES384"] = "RS384",
        *,
        scope: str,
        jwks_url: str | None = None,
        assertion_lifetime_seconds: int = MAX_ASSERTION_LIFETIME_SECONDS,
        refresh_margin: float | None = None,
        retry: RetryPolicy = DEFAULT_TOKEN_RETRY,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        user_agent: str = "fhir-elt",
    ) -> None:
        super().__init__(
            token_url,
            client_id,
            scope,
            refresh_margin=refresh_margin,
            retry=retry,
            timeout=timeout,
            transport=transport,
            clock=clock,
            sleep=sleep,
            rng=rng,
            user_agent=user_agent,
        )
        who = f"SMART backend client {client_id}"
        if algorithm not in ("RS384", "ES384"):
            raise ConfigError(f"{who}: algorithm must be RS384 or ES384, not {algorithm!r}")
        if not scope:
            raise ConfigError(f"{who}: scope is empty")
        if kid is None and jwks_url is None:
            raise ConfigError(f"{who}: needs a kid, or a jwks_url to find it in")
        if not 0 < assertion_lifetime_seconds <= MAX_ASSERTION_LIFETIME_SECONDS:
            raise ConfigError(
                f"{who}: assertion_lifetime_seconds must be between 1 and "
                f"{MAX_ASSERTION_LIFETIME_SECONDS}"
            )
        self._key = _load_private_key(private_key_pem, algorithm, who)
        self.algorithm = algorithm
        self.kid = kid
        self.jwks_url = jwks_url
        self._assertion_lifetime = assertion_lifetime_seconds
        self._wall_clock = wall_clock

    def client_assertion(self) -> str:
        """A freshly signed client assertion JWT (resolves ``kid`` from the JWKS if needed)."""
        if self.kid is None:
            self.kid = self._kid_from_jwks()
        now = int(self._wall_clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + self._assertion_lifetime,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims, self._key, algorithm=self.algorithm, headers={"kid": self.kid, "typ": "JWT"}
        )

    def _token_request(self, http: httpx.Client) -> httpx.Response:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope or "",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        return http.post(self.token_url, data=form, headers={"Accept": "application/json"})

    def _kid_from_jwks(self) -> str:
        assert self.jwks_url is not None  # checked at construction
        who = f"SMART backend client {self.client_id}"
        jwks_host = httpx.URL(self.jwks_url).host
        jwks_url = self.jwks_url
        response = self._call(lambda http: http.get(jwks_url))
        if not response.is_success:
            raise ConfigError(f"{who}: the JWKS at {jwks_host} answered {response.status_code}")
        body = _json_object(response.content)
        keys = body.get("keys") if body is not None else None
        if not isinstance(keys, list):
            raise MalformedResponseError(f"{who}: the JWKS at {jwks_host} has no 'keys' list")
        public_numbers = self._key.public_key().public_numbers()
        kty = "RSA" if self.algorithm == "RS384" else "EC"
        for jwk in keys:
            if not isinstance(jwk, dict) or jwk.get("kty") != kty:
                continue
            if jwk.get("alg", self.algorithm) != self.algorithm or jwk.get("use", "sig") != "sig":
                continue
            kid = jwk.get("kid")
            if isinstance(kid, str) and kid and _jwk_public_numbers(jwk, kty) == public_numbers:
                logger.info("%s: using key id %s from the JWKS at %s", who, kid, jwks_host)
                return kid
        raise ConfigError(
            f"{who}: no key in the JWKS at {jwks_host} matches the private key "
            f"(kty {kty}, alg {self.algorithm})"
        )


def _load_private_key(
    pem: str | bytes, algorithm: str, who: str
) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """The private key, checked against ``algorithm``; errors never quote the key."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        reason = "it is encrypted" if isinstance(exc, TypeError) else "it cannot be read"
        raise ConfigError(
            f"{who}: private_key_pem is not a usable unencrypted PEM private key ({reason})"
        ) from None
    except Exception:  # cryptography's UnsupportedAlgorithm and the like
        raise ConfigError(f"{who}: private_key_pem is of an unsupported key type") from None
    kind = (
        "RSA"
        if isinstance(key, rsa.RSAPrivateKey)
        else f"EC {key.curve.name}"
        if isinstance(key, ec.EllipticCurvePrivateKey)
        else type(key).__name__.removeprefix("_")
    )
    if algorithm == "RS384":
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError(f"{who}: algorithm RS384 needs an RSA private key, got {kind}")
        if key.key_size < 2048:
            raise ConfigError(
                f"{who}: RS384 needs an RSA key of at least 2048 bits, got {key.key_size}"
            )
        return key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp384r1":
        raise ConfigError(f"{who}: algorithm ES384 needs an EC P-384 private key, got {kind}")
    return key


def _jwk_public_numbers(jwk: dict[str, Any], kty: str) -> object | None:
    """The public numbers of a JWK, or None if it cannot be read."""
    try:
        loaded = RSAAlgorithm.from_jwk(jwk) if kty == "RSA" else ECAlgorithm.from_jwk(jwk)
    except (jwt.InvalidKeyError, ValueError, KeyError, TypeError):
        return None
    public = loaded.public_key() if hasattr(loaded, "private_numbers") else loaded
    return public.public_numbers()  # type: ignore[union-attr]


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _lifetime(expires_in: object) -> float:
    """``expires_in`` as seconds (numbers or numeric strings); the default when unusable."""
    if isinstance(expires_in, bool):
        return DEFAULT_LIFETIME_SECONDS
    if isinstance(expires_in, int | float):
        seconds = float(expires_in)
    elif isinstance(expires_in, str):
        try:
            seconds = float(expires_in)
        except ValueError:
            return DEFAULT_LIFETIME_SECONDS
    else:
        return DEFAULT_LIFETIME_SECONDS
    return seconds if 0 < seconds < 10 * 365 * 86400 else DEFAULT_LIFETIME_SECONDS


def _server_now(response: httpx.Response) -> datetime:
    """The server's ``Date`` (to measure an HTTP-date ``Retry-After`` from), else now."""
    return parse_http_date(response.headers.get("Date")) or datetime.now(UTC)
