"""HTTP access to FHIR servers: retries, pacing, circuit breaking, OAuth tokens, PHI-free logs."""

from loaders.http.auth import ClientCredentials, SmartBackendServices, StaticToken, TokenProvider
from loaders.http.circuit_breaker import CircuitBreaker
from loaders.http.client import (
    ClientCounters,
    DownloadResult,
    FhirHttpClient,
    FhirResponse,
    HttpAnswer,
    Timeouts,
)
from loaders.http.rate_limit import RateBudget, TokenBucket
from loaders.http.request_log import (
    RequestRecord,
    describe_request,
    path_template,
    query_keys,
    safe_query_description,
)
from loaders.http.retry import RetryPolicy, parse_http_date, parse_retry_after

__all__ = [
    "CircuitBreaker",
    "ClientCounters",
    "ClientCredentials",
    "DownloadResult",
    "FhirHttpClient",
    "FhirResponse",
    "HttpAnswer",
    "RateBudget",
    "RequestRecord",
    "RetryPolicy",
    "SmartBackendServices",
    "StaticToken",
    "Timeouts",
    "TokenBucket",
    "TokenProvider",
    "describe_request",
    "parse_http_date",
    "parse_retry_after",
    "path_template",
    "query_keys",
    "safe_query_description",
]
