"""Local FHIR R4 test server for integration tests (see README.md in this folder)."""

from tests.fhir_server.auth import (
    JWT_BEARER,
    KeyPair,
    RegisteredClient,
    ServerAuth,
    jwk_set,
    make_client_assertion,
    make_ec_key,
    make_rsa_key,
)
from tests.fhir_server.bulk import BulkJobInfo
from tests.fhir_server.ndjson import load_ndjson_dir
from tests.fhir_server.scenario import Scenario
from tests.fhir_server.server import FhirTestServer
from tests.fhir_server.stats import RequestRecord, ServerStats

__all__ = [
    "JWT_BEARER",
    "BulkJobInfo",
    "FhirTestServer",
    "KeyPair",
    "RegisteredClient",
    "RequestRecord",
    "Scenario",
    "ServerAuth",
    "ServerStats",
    "jwk_set",
    "load_ndjson_dir",
    "make_client_assertion",
    "make_ec_key",
    "make_rsa_key",
]
