"""Build the HTTP client of a Bulk Data source from its configuration.

The same client rules as REST sources (retries, rate budget, circuit breaker, token refresh);
the connection pool is sized for the parallel downloads, and the read timeout defaults to
300 s because file servers may pause for a long time before the first byte of a large file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from loaders.bulk.config import BulkSourceConfig
from loaders.http import (
    CircuitBreaker,
    FhirHttpClient,
    RateBudget,
    RequestRecord,
    RetryPolicy,
    Timeouts,
)
from loaders.rest.connect import token_provider


@contextmanager
def open_bulk_client(
    config: BulkSourceConfig, on_request: Callable[[RequestRecord], None] | None = None
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
        max_concurrency=config.download_concurrency,
        timeouts=Timeouts(connect=config.connect_timeout, read=config.read_timeout),
        breaker=CircuitBreaker(config.circuit_breaker_threshold),
        on_request=on_request,
    )
    with client:
        yield client
