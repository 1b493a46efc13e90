"""Build the HTTP client of a Bulk Data source from its configuration.

The same client rules as REST sources (retries, rate budget, circuit breaker, token refresh);
the connection pool is sized for the parallel downloads, and the read timeout defaults to
300 s because file servers may pause for a long time before the first byte of a large file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from loaders.bulk.config import BulkSourceConfig
from loaders.http import FhirHttpClient, RequestRecord
from loaders.rest.connect import open_http_client


@contextmanager
def open_bulk_client(
    config: BulkSourceConfig, on_request: Callable[[RequestRecord], None] | None = None
) -> Iterator[FhirHttpClient]:
    """An open client for ``config``'s server; one request slot per parallel download."""
    with open_http_client(
        config, max_concurrency=config.download_concurrency, on_request=on_request
    ) as client:
        yield client
