"""SMART Backend Services token endpoint of the test server, and key helpers for tests.

Clients authenticate with a signed JWT (``private_key_jwt``, RS384 or ES384) or a client
secret (HTTP Basic or form fields); tokens are opaque random strings that expire exactly
``token_lifetime_seconds`` after issue, by the server clock.
"""

from __future__ import annotations

import base64
import hmac
import itertools
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS: tuple[str, ...] = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = timedelta(minutes=5)
# Tolerated rounding when a client computes ``exp`` (e.g. ``ceil(now) + 300``).
ASSERTION_EXP_SLACK = timedelta(seconds=1)

_RESOURCE_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]*)"
    r"\.(?P<perms>read|write|\*|c?r?u?d?s?)(?:\?.*)?$"
)
_V1_PERMS = {"read": "rs", "write": "cud", "*": "cruds"}


# -- configuration -------------------------------------------------------------------------


@dataclass
class RegisteredClient:
    """A client the token endpoint knows.

    Attributes:
        secret: Client secret (``None``: secret authentication refused).
        jwks: Public JWK set (``{"keys": [{"kid": ..., ...}]}``) for JWT assertions.
        public_keys: Public keys as PEM by ``kid``, for JWT assertions.
        scopes: Scopes the client may be granted (SMART v1 ``.read`` or v2 ``.rs`` forms).
    """

    secret: str | None = None
    jwks: dict[str, Any] | None = None
    public_keys: dict[str, str] = field(default_factory=dict)
    scopes: set[str] = field(default_factory=lambda: {"system/*.read"})

    def key_for(self, kid: str) -> Any | None:
        """The public key registered under ``kid`` (a key object or PEM), or ``None``."""
        if kid in self.public_keys:
            return self.public_keys[kid]
        for jwk in (self.jwks or {}).get("keys", []):
            if jwk.get("kid") == kid:
                return jwt.PyJWK(jwk).key
        return None


@dataclass
class ServerAuth:
    """Authorization settings of a :class:`FhirTestServer`.

    Attributes:
        required: Data requests need a valid bearer token (metadata never does).
        clients: Registered clients by ``client_id``.
        static_tokens: Pre-issued tokens that never expire, mapped to their scopes.
    """

    required: bool = False
    clients: dict[str, RegisteredClient] = field(default_factory=dict)
    static_tokens: dict[str, set[str]] = field(default_factory=dict)

    def public_jwks(self) -> dict[str, Any]:
        """Every registered client's public keys as one JWK set (PEM keys converted)."""
        keys: list[dict[str, Any]] = []
        for client in self.clients.values():
            keys.extend(dict(jwk) for jwk in (client.jwks or {}).get("keys", []))
            keys.extend({**public_jwk(pem), "kid": kid} for kid, pem in client.public_keys.items())
        return {"keys": keys}


# -- key helpers for tests -----------------------------------------------------------------


class KeyPair(NamedTuple):
    """A key pair for client assertions: ``private_pem, public_jwk = make_rsa_key("k1")``."""

    private_pem: str
    public_jwk: dict[str, Any]

    @property
    def kid(self) -> str:
        """The ``kid`` of the public JWK."""
        return str(self.public_jwk["kid"])

    @property
    def alg(self) -> str:
        """``RS384`` or ``ES384``."""
        return str(self.public_jwk["alg"])

    @property
    def public_pem(self) -> str:
        """The public key as PEM (for :attr:`RegisteredClient.public_keys`)."""
        public = serialization.load_pem_private_key(
            self.private_pem.encode(), password=None
        ).public_key()
        return public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


def _private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_rsa_key(kid: str, key_size: int = 2048) -> KeyPair:
    """Generate an RSA key pair for RS384 assertions (public JWK carries ``kid``)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    jwk = dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    jwk.update(kid=kid, alg="RS384", use="sig")
    return KeyPair(_private_pem(key), jwk)


def make_ec_key(kid: str) -> KeyPair:
    """Generate a P-384 key pair for ES384 assertions (public JWK carries ``kid``)."""
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = dict(ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
    jwk.update(kid=kid, alg="ES384", use="sig")
    return KeyPair(_private_pem(key), jwk)


def public_jwk(pem: str) -> dict[str, Any]:
    """Convert a public key PEM (RSA or EC) to a JWK dict (no ``kid``)."""
    key = serialization.load_pem_public_key(pem.encode())
    if isinstance(key, rsa.RSAPublicKey):
        return dict(RSAAlgorithm.to_jwk(key, as_dict=True))
    if isinstance(key, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(key, as_dict=True))
    raise ValueError("only RSA and EC public keys are supported")


def jwk_set(*keys: KeyPair) -> dict[str, Any]:
    """A public JWK set of ``keys``, for :attr:`RegisteredClient.jwks`."""
    return {"keys": [dict(key.public_jwk) for key in keys]}


def make_client_assertion(
    client_id: str,
    key: KeyPair,
    token_url: str,
    *,
    now: datetime | None = None,
    lifetime: timedelta = timedelta(minutes=4),
    jti: str | None = None,
    kid: str | None = None,
    **claims: Any,
) -> str:
    """Sign a SMART Backend Services client assertion (claims may be overridden).

    Args:
        client_id: ``iss`` and ``sub``.
        key: Signing key; its ``alg`` and ``kid`` go into the header.
        token_url: ``aud``.
        now: Issue time (default: real time).
        lifetime: ``exp - now``.
        jti: Unique id (default: a fresh uuid4).
        kid: Header ``kid`` override.
        **claims: Extra or replacement claims (``aud="..."``, ``sub="..."``).
    """
    issued = now or datetime.now().astimezone()
    payload: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": int((issued + lifetime).timestamp()),
        "jti": jti or str(uuid.uuid4()),
    }
    payload.update(claims)
    headers = {"kid": kid or key.kid, "typ": "JWT"}
    return jwt.encode(payload, key.private_pem, algorithm=key.alg, headers=headers)


# -- scopes --------------------------------------------------------------------------------


def _parse_scope(scope: str) -> tuple[str, str, str] | None:
    match = _RESOURCE_SCOPE.match(scope)
    if match is None or not match["perms"]:
        return None
    perms = _V1_PERMS.get(match["perms"], match["perms"])
    return match["context"], match["type"], perms


def scope_covers(allowed: Iterable[str], requested: str) -> bool:
    """Whether the ``allowed`` scopes include everything ``requested`` asks for.

    ``system/*.read`` covers ``system/Patient.rs`` and ``system/Patient.read``; a non-resource
    scope (``launch``, ``offline_access``) must be allowed literally.
    """
    allowed = list(allowed)
    wanted = _parse_scope(requested)
    if wanted is None:
        return requested in allowed
    context, rtype, perms = wanted
    granted: set[str] = set()
    for scope in allowed:
        parsed = _parse_scope(scope)
        if parsed and parsed[0] == context and parsed[1] in ("*", rtype):
            granted.update(parsed[2])
    return set(perms) <= granted


def scopes_allow(scopes: Iterable[str], resource_type: str, permission: str) -> bool:
    """Whether any resource scope (any context) grants ``permission`` (``r``/``s``) on a type."""
    for scope in scopes:
        parsed = _parse_scope(scope)
        if parsed and parsed[1] in ("*", resource_type) and permission in parsed[2]:
            return True
    return False


# -- token service -------------------------------------------------------------------------


class TokenError(Exception):
    """An OAuth error response (RFC 6749 section 5.2)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        """The JSON error body."""
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token the server knows.

    Attributes:
        token_id: Short id used in the request log (never the token itself).
        client_id: Client it was issued to (``None`` for static tokens).
        scopes: Granted scopes.
        expires_at: Server-clock expiry (``None``: never).
    """

    token_id: str
    client_id: str | None
    scopes: frozenset[str]
    expires_at: datetime | None


class TokenService:
    """Issues and looks up access tokens; all times come from the server clock."""

    def __init__(self, auth: ServerAuth, now: Callable[[], datetime]) -> None:
        self.auth = auth
        self._now = now
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}
        self._used_jti: set[tuple[str, str]] = set()
        self._ids = itertools.count(1)

    def lookup(self, token: str) -> IssuedToken | None:
        """The token's record (static tokens included), expired or not; ``None`` if unknown."""
        with self._lock:
            issued = self._tokens.get(token)
        if issued is not None:
            return issued
        for index, (static, scopes) in enumerate(self.auth.static_tokens.items()):
            if hmac.compare_digest(static, token):
                return IssuedToken(f"static-{index}", None, frozenset(scopes), None)
        return None

    def issued_tokens(self) -> list[str]:
        """Every access token issued so far (the secrets themselves; for leak scans in tests)."""
        with self._lock:
            return list(self._tokens)

    def is_expired(self, token: IssuedToken) -> bool:
        """Whether the server clock has reached the token's expiry."""
        return token.expires_at is not None and self._now() >= token.expires_at

    def issue(
        self,
        form: dict[str, str],
        authorization: str | None,
        token_url: str,
        lifetime_seconds: int,
    ) -> tuple[dict[str, Any], IssuedToken]:
        """Handle one token request; return the JSON response and the token record.

        Raises:
            TokenError: The request is malformed, the client is not authenticated, or the
                scope is not allowed.
        """
        grant_type = form.get("grant_type")
        if not grant_type:
            raise TokenError(400, "invalid_request", "grant_type is required")
        if grant_type != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", f"grant_type {grant_type!r}")
        client_id = self._authenticate(form, authorization, token_url)
        client = self.auth.clients[client_id]
        requested = form.get("scope", "").split()
        for scope in requested:
            if not scope_covers(client.scopes, scope):
                raise TokenError(400, "invalid_scope", f"scope {scope!r} not allowed")
        granted = requested or sorted(client.scopes)
        now = self._now()
        with self._lock:
            token = secrets.token_urlsafe(32)
            issued = IssuedToken(
                token_id=f"tok-{next(self._ids):06d}",
                client_id=client_id,
                scopes=frozenset(granted),
                expires_at=now + timedelta(seconds=lifetime_seconds),
            )
            self._tokens[token] = issued
        body = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": lifetime_seconds,
            "scope": " ".join(granted),
        }
        return body, issued

    def _authenticate(self, form: dict[str, str], authorization: str | None, aud: str) -> str:
        if "client_assertion_type" in form or "client_assertion" in form:
            return self._authenticate_assertion(form, aud)
        if authorization and authorization[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
                raw_id, raw_secret = decoded.split(":", 1)
            except (ValueError, UnicodeDecodeError) as exc:
                raise TokenError(401, "invalid_client", "malformed Basic credentials") from exc
            return self._check_secret(unquote(raw_id), unquote(raw_secret))
        if "client_secret" in form:
            return self._check_secret(form.get("client_id", ""), form["client_secret"])
        raise TokenError(401, "invalid_client", "no client authentication")

    def _check_secret(self, client_id: str, secret: str) -> str:
        client = self.auth.clients.get(client_id)
        if client is None or client.secret is None:
            raise TokenError(401, "invalid_client", f"unknown client {client_id!r}")
        if not hmac.compare_digest(client.secret.encode(), secret.encode()):
            raise TokenError(401, "invalid_client", "wrong client secret")
        return client_id

    def _authenticate_assertion(self, form: dict[str, str], aud: str) -> str:
        if form.get("client_assertion_type") != JWT_BEARER:
            raise TokenError(400, "invalid_request", f"client_assertion_type must be {JWT_BEARER}")
        assertion = form.get("client_assertion")
        if not assertion:
            raise TokenError(400, "invalid_request", "client_assertion is required")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise TokenError(401, "invalid_client", f"unreadable assertion: {exc}") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ASSERTION_ALGORITHMS:
            raise TokenError(401, "invalid_client", f"alg {alg!r} not allowed")
        if not kid:
            raise TokenError(401, "invalid_client", "assertion header has no kid")
        client_id = str(unverified.get("iss", ""))
        if "client_id" in form and form["client_id"] != client_id:
            raise TokenError(401, "invalid_client", "client_id does not match iss")
        client = self.auth.clients.get(client_id)
        if client is None:
            raise TokenError(401, "invalid_client", f"unknown client {client_id!r}")
        key = client.key_for(kid)
        if key is None:
            raise TokenError(401, "invalid_client", f"no key with kid {kid!r}")
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=[alg],
                audience=aud,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["iss", "sub", "aud", "exp", "jti"],
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise TokenError(401, "invalid_client", f"assertion rejected: {exc}") from exc
        if claims["sub"] != client_id:
            raise TokenError(401, "invalid_client", "sub must equal iss (the client_id)")
        self._check_exp(claims["exp"])
        with self._lock:
            if (client_id, str(claims["jti"])) in self._used_jti:
                raise TokenError(401, "invalid_client", "jti already used")
            self._used_jti.add((client_id, str(claims["jti"])))
        return client_id

    def _check_exp(self, exp: Any) -> None:
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise TokenError(401, "invalid_client", "exp must be a number")
        now = self._now().timestamp()
        if exp <= now:
            raise TokenError(401, "invalid_client", "assertion expired")
        limit = (MAX_ASSERTION_LIFETIME + ASSERTION_EXP_SLACK).total_seconds()
        if exp - now > limit:
            raise TokenError(401, "invalid_client", "exp more than 5 minutes ahead")
