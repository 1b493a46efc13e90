"""Build the HTTP client of a REST source from its configuration.

The rate budget is the source's published limit times the headroom (0.6 by default: run at 60
of 100); the concurrency limit is the number of extraction workers; timeouts are sized for
slow VPN links to on-premise EHRs (30 s connect, 120 s read by default), not sandbox speeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from loaders.exceptions import ConfigError
from loaders.http import (
    CircuitBreaker,
    ClientCredentials,
    FhirHttpClient,
    RateBudget,
    RequestRecord,
    RetryPolicy,
    SmartBackendServices,
    StaticToken,
    Timeouts,
    TokenProvider,
)
from loaders.rest.config import AuthConfig, AuthKind, RestSourceConfig


def token_provider(auth: AuthConfig) -> TokenProvider | None:
    """The token provider the configuration asks for (None: no authentication)."""
    if auth.kind is AuthKind.NONE:
        return None
    if auth.kind is AuthKind.STATIC:
        assert auth.token is not None
        return StaticToken(auth.token)
    if not auth.token_url:
        raise ConfigError(f"auth {auth.kind.value} needs token_url (the server's token endpoint)")
    assert auth.client_id is not None
    if auth.kind is AuthKind.CLIENT_CREDENTIALS:
        assert auth.client_secret is not None
        return ClientCredentials(auth.token_url, auth.client_id, auth.client_secret, auth.scope)
    assert auth.private_key is not None
    return SmartBackendServices(
        auth.token_url,
        auth.client_id,
        auth.private_key,
        auth.kid,
        auth.algorithm,  # type: ignore[arg-type]
        scope=auth.scope,
        jwks_url=auth.jwks_url,
    )


class HttpClientSettings(Protocol):
    """The client settings REST and Bulk Data sources share (read-only; see their configs)."""

    @property
    def base_url(self) -> str: ...
    @property
    def auth(self) -> AuthConfig: ...
    @property
    def rate_limit(self) -> int | None: ...
    @property
    def rate_limit_period_seconds(self) -> float: ...
    @property
    def headroom(self) -> float: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def max_elapsed_seconds(self) -> float: ...
    @property
    def max_retry_after_seconds(self) -> float: ...
    @property
    def retry_base_delay(self) -> float: ...
    @property
    def retry_max_delay(self) -> float: ...
    @property
    def connect_timeout(self) -> float: ...
    @property
    def read_timeout(self) -> float: ...
    @property
    def circuit_breaker_threshold(self) -> int: ...


@contextmanager
def open_http_client(
    config: HttpClientSettings,
    *,
    max_concurrency: int,
    on_request: Callable[[RequestRecord], None] | None = None,
) -> Iterator[FhirHttpClient]:
    """An open client for ``config``'s server; closed (with its token provider) on exit."""
    bucket = None
    if config.rate_limit is not None:
        budget = RateBudget(config.rate_limit, config.rate_limit_period_seconds, config.headroom)
        bucket = budget.bucket()
    client = FhirHttpClient(
        config.base_url,
        token_provider(config.auth),
        retry=RetryPolicy(
            max_attempts=config.max_attempts,
            max_elapsed_seconds=config.max_elapsed_seconds,
            max_retry_after_seconds=config.max_retry_after_seconds,
            base_delay=config.retry_base_delay,
            max_delay=config.retry_max_delay,
        ),
        bucket=bucket,
        max_concurrency=max_concurrency,
        timeouts=Timeouts(connect=config.connect_timeout, read=config.read_timeout),
        breaker=CircuitBreaker(config.circuit_breaker_threshold),
        on_request=on_request,
    )
    with client:  # closing the client closes its token provider too
        yield client


@contextmanager
def open_client(
    config: RestSourceConfig, on_request: Callable[[RequestRecord], None] | None = None
) -> Iterator[FhirHttpClient]:
    """An open client for a REST source; one request slot per extraction worker."""
    with open_http_client(
        config, max_concurrency=config.concurrency, on_request=on_request
    ) as client:
        yield client
