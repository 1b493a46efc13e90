"""JSON documents the server returns: OperationOutcome, Bundle pages, CapabilityStatement."""

from __future__ import annotations

from typing import Any

from tests.fhir_server.scenario import Scenario
from tests.fhir_server.search import COMPARTMENT_TYPES, DATE_ELEMENTS

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SPEC = "http://hl7.org/fhir/SearchParameter"


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def outcome_entry(code: str, diagnostics: str, severity: str) -> dict[str, Any]:
    """A searchset entry carrying an OperationOutcome (``search.mode = "outcome"``)."""
    return {
        "resource": operation_outcome(code, diagnostics, severity),
        "search": {"mode": "outcome"},
    }


def _search_param(name: str, ptype: str, definition: str) -> dict[str, str]:
    return {"name": name, "type": ptype, "definition": f"{SPEC}/{definition}"}


def capability_statement(
    types: list[str], scenario: Scenario, token_url: str, date: str
) -> dict[str, Any]:
    """R4 CapabilityStatement reflecting the scenario's capabilities right now."""
    resources = []
    for rtype in sorted(types):
        params = [_search_param("_id", "token", "Resource-id")]
        if rtype not in scenario.last_updated_unsupported:
            params.append(_search_param("_lastUpdated", "date", "Resource-lastUpdated"))
        params.append(_search_param("_count", "number", "Resource-count"))
        if scenario.supports_sort:
            params.append(_search_param("_sort", "string", "Resource-sort"))
        params.append(_search_param("_summary", "token", "Resource-summary"))
        params.append(_search_param("_elements", "string", "Resource-elements"))
        if rtype in COMPARTMENT_TYPES:
            params.append(_search_param("patient", "reference", "clinical-patient"))
        if rtype in DATE_ELEMENTS:
            params.append(_search_param("date", "date", "clinical-date"))
        resource: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": params,
        }
        if rtype == "Patient":
            resource["operation"] = [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                }
            ]
        resources.append(resource)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "fhir-elt test server"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": OAUTH_URIS,
                            "extension": [{"url": "token", "valueUri": token_url}],
                        }
                    ],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                },
                "resource": resources,
            }
        ],
    }


def smart_configuration(token_url: str) -> dict[str, Any]:
    """``.well-known/smart-configuration`` for Backend Services."""
    return {
        "token_endpoint": token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["system/*.read", "system/*.rs"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }
