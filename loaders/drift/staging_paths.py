"""The JSON paths the dbt staging models read, per resource type: where drift must stop a load.

A renamed or retyped element under one of these paths would turn a staging column quietly
null, so the default drift policy (:mod:`loaders.drift.policy`) is ``fail`` there. The list is
kept here by hand, one entry per element the staging SQL reads (through ``json_*`` and the
datatype macros: ``fhir_reference`` reads ``.reference``/``.type``, ``fhir_codeable_concept``
``.coding``/``.text``, ``fhir_quantity`` ``.value``/``.unit``/``.system``/``.code``,
``fhir_period`` ``.start``/``.end``, ``fhir_human_name`` ``.use``/``.family``/``.given``,
``fhir_identifier`` ``identifier.system``/``.value``); ``tests/unit/test_drift.py`` checks it
against ``dbt_project/models/staging/fhir/*.sql``, so a staging model that starts reading a new
element fails that test until the element is listed. Paths are FHIRPath without indices and
without the type; extensions are not listed (they are never drift).
"""

from __future__ import annotations

_REFERENCE = ("reference", "type")
_CODEABLE = ("coding", "text")
_QUANTITY = ("value", "unit", "system", "code")
_PERIOD = ("start", "end")
_NAME = ("use", "family", "given")
_IDENTIFIER = ("identifier.system", "identifier.value")
_ADDRESS = ("line", "city", "state", "postalCode", "country")


def _under(element: str, parts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{element}.{part}" for part in parts)


def _paths(*groups: tuple[str, ...] | str) -> frozenset[str]:
    paths: set[str] = set()
    for group in groups:
        paths.update((group,) if isinstance(group, str) else group)
    return frozenset(paths)


STAGING_READ_PATHS: dict[str, frozenset[str]] = {
    "AllergyIntolerance": _paths(
        _under("clinicalStatus", _CODEABLE),
        _under("verificationStatus", _CODEABLE),
        _under("code", _CODEABLE),
        _under("reaction.manifestation", _CODEABLE),
        "reaction.severity",
        _under("encounter", _REFERENCE),
        _under("patient", _REFERENCE),
        _under("recorder", _REFERENCE),
        ("category", "criticality", "type", "lastOccurrence", "onsetDateTime", "recordedDate"),
    ),
    "Condition": _paths(
        _under("category", _CODEABLE),
        _under("clinicalStatus", _CODEABLE),
        _under("verificationStatus", _CODEABLE),
        _under("code", _CODEABLE),
        _under("encounter", _REFERENCE),
        _under("subject", _REFERENCE),
        ("abatementDateTime", "onsetDateTime", "recordedDate"),
    ),
    "Coverage": _paths(
        _under("relationship", _CODEABLE),
        _under("type", _CODEABLE),
        _under("period", _PERIOD),
        _under("beneficiary", _REFERENCE),
        _under("payor", _REFERENCE),
        _under("subscriber", _REFERENCE),
        ("class.type.coding", "class.value", "class.name"),
        ("order", "dependent", "network", "status", "subscriberId"),
    ),
    "DiagnosticReport": _paths(
        _under("category", _CODEABLE),
        _under("code", _CODEABLE),
        _under("effectivePeriod", _PERIOD),
        _under("encounter", _REFERENCE),
        _under("performer", _REFERENCE),
        _under("subject", _REFERENCE),
        _under("result", _REFERENCE),
        ("conclusion", "status", "effectiveDateTime", "issued"),
    ),
    "Encounter": _paths(
        _under("type", _CODEABLE),
        _under("hospitalization.dischargeDisposition", _CODEABLE),
        _under("period", _PERIOD),
        _under("location.location", _REFERENCE),
        _under("participant.individual", _REFERENCE),
        _under("serviceProvider", _REFERENCE),
        _under("subject", _REFERENCE),
        ("class.code", "class.display", "class.system", "status"),
    ),
    "Immunization": _paths(
        _under("statusReason", _CODEABLE),
        _under("vaccineCode", _CODEABLE),
        _under("doseQuantity", _QUANTITY),
        _under("encounter", _REFERENCE),
        _under("location", _REFERENCE),
        _under("patient", _REFERENCE),
        _under("performer.actor", _REFERENCE),
        ("primarySource", "lotNumber", "occurrenceString", "occurrenceDateTime", "recorded"),
        "status",
    ),
    "Location": _paths(
        _under("physicalType", _CODEABLE),
        _under("type", _CODEABLE),
        _under("managingOrganization", _REFERENCE),
        _under("partOf", _REFERENCE),
        _under("address", _ADDRESS),
        ("position.latitude", "position.longitude", "mode", "name", "status"),
    ),
    "MedicationDispense": _paths(
        _under("medicationCodeableConcept", _CODEABLE),
        _under("daysSupply", _QUANTITY),
        _under("quantity", _QUANTITY),
        _under("authorizingPrescription", _REFERENCE),
        _under("context", _REFERENCE),
        _under("location", _REFERENCE),
        _under("medicationReference", _REFERENCE),
        _under("performer.actor", _REFERENCE),
        _under("subject", _REFERENCE),
        ("status", "whenHandedOver", "whenPrepared"),
    ),
    "MedicationRequest": _paths(
        _under("medicationCodeableConcept", _CODEABLE),
        _under("dispenseRequest.validityPeriod", _PERIOD),
        _under("dispenseRequest.expectedSupplyDuration", _QUANTITY),
        _under("dispenseRequest.quantity", _QUANTITY),
        _under("encounter", _REFERENCE),
        _under("medicationReference", _REFERENCE),
        _under("reasonReference", _REFERENCE),
        _under("requester", _REFERENCE),
        _under("subject", _REFERENCE),
        ("dispenseRequest.numberOfRepeatsAllowed", "intent", "status", "authoredOn"),
    ),
    "Observation": _paths(
        _under("category", _CODEABLE),
        _under("code", _CODEABLE),
        _under("valueCodeableConcept", _CODEABLE),
        _under("valueQuantity", _QUANTITY),
        _under("effectivePeriod", _PERIOD),
        _under("encounter", _REFERENCE),
        _under("subject", _REFERENCE),
        _under("component.code", _CODEABLE),
        _under("component.valueCodeableConcept", _CODEABLE),
        _under("component.valueQuantity", _QUANTITY),
        ("status", "valueString", "effectiveDateTime", "issued"),
    ),
    "Organization": _paths(
        _under("type", _CODEABLE),
        _under("partOf", _REFERENCE),
        _under("address", _ADDRESS),
        ("active", "name"),
    ),
    "Patient": _paths(
        _under("name", _NAME),
        _under("address", _ADDRESS),
        _IDENTIFIER,
        ("gender", "birthDate", "deceasedBoolean", "deceasedDateTime"),
    ),
    "Practitioner": _paths(
        _under("qualification.code", _CODEABLE),
        _under("name", _NAME),
        _under("address", _ADDRESS),
        _IDENTIFIER,
        ("active", "gender"),
    ),
    "Procedure": _paths(
        _under("category", _CODEABLE),
        _under("code", _CODEABLE),
        _under("reasonCode", _CODEABLE),
        _under("performedPeriod", _PERIOD),
        _under("encounter", _REFERENCE),
        _under("location", _REFERENCE),
        _under("performer.actor", _REFERENCE),
        _under("reasonReference", _REFERENCE),
        _under("subject", _REFERENCE),
        ("status", "performedDateTime"),
    ),
}


def staging_read_paths(resource_type: str) -> frozenset[str]:
    """Full paths (``Patient.name.family``) the staging models read for a type; maybe none."""
    return frozenset(
        f"{resource_type}.{path}" for path in STAGING_READ_PATHS.get(resource_type, ())
    )
