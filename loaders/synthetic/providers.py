"""The shared provider pool: organizations, their locations, and practitioners.

Generated once per run, before any patient, and referenced by every patient's encounters as
``Organization/<id>``, ``Location/<id>`` and ``Practitioner/<id>`` (in both output formats).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from loaders.synthetic import vocabulary as v
from loaders.synthetic.clock import YEAR
from loaders.synthetic.ids import Permutation, new_uuid
from loaders.synthetic.meta import MetaStamper

JSON = dict[str, Any]


@dataclass(slots=True)
class Site:
    """One organization with the references encounters need."""

    org_ref: JSON
    is_hospital: bool
    clinic_ref: JSON
    pediatric_ref: JSON | None
    er_ref: JSON | None
    ward_ref: JSON | None
    practitioner_refs: list[JSON] = field(default_factory=list)


@dataclass(slots=True)
class ProviderPool:
    """All shared resources plus lookup structures for encounter planning."""

    organizations: list[JSON]
    locations: list[JSON]
    practitioners: list[JSON]
    sites: list[Site]
    hospitals: list[Site]


def pool_sizes(patients: int) -> tuple[int, int]:
    """Return ``(organizations, practitioners)`` for a run of ``patients`` patients."""
    return max(3, patients // 200), max(10, patients // 20)


def _address(rng: random.Random) -> JSON:
    city, state, zip3 = rng.choice(v.CITIES)
    return {
        "line": [
            f"{rng.randrange(1, 2000)} {rng.choice(v.STREET_NAMES)} {rng.choice(v.STREET_SUFFIXES)}"
        ],
        "city": city,
        "state": state,
        "postalCode": f"{zip3}{rng.randrange(100):02d}",
        "country": "US",
    }


def _phone(rng: random.Random) -> str:
    return f"555-{rng.randrange(100, 1000)}-{rng.randrange(10000):04d}"


def _ref(rtype: str, rid: str, display: str) -> JSON:
    return {"reference": f"{rtype}/{rid}", "display": display}


def build_provider_pool(
    rng: random.Random, patients: int, as_of: int, stamper: MetaStamper
) -> ProviderPool:
    """Generate the shared organizations, locations and practitioners.

    Every third organization (starting with the first) is a hospital with an emergency room
    and a ward; the others are clinics. Practitioners are spread round-robin over them.

    Args:
        rng: Random stream dedicated to the pool.
        patients: Number of patients in the run (sizes the pool).
        as_of: Epoch seconds the data is current as of.
        stamper: Meta policy.

    Returns:
        The pool.
    """
    n_org, n_prac = pool_sizes(patients)
    npi = Permutation(rng, 10**7)
    organizations: list[JSON] = []
    locations: list[JSON] = []
    practitioners: list[JSON] = []
    sites: list[Site] = []
    created = as_of - 5 * YEAR

    def location(name: str, types: list[JSON], org: JSON, address: JSON) -> JSON:
        lid = new_uuid(rng)
        locations.append(
            {
                "resourceType": "Location",
                "id": lid,
                "meta": stamper.stamp_recent("Location", rng, created, 180),
                "status": "active",
                "name": name,
                "mode": "instance",
                "type": types,
                "address": address,
                "physicalType": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                            "code": "bu" if types is v.LOC_WARD else "ro",
                            "display": "Building" if types is v.LOC_WARD else "Room",
                        }
                    ]
                },
                "managingOrganization": org,
            }
        )
        return _ref("Location", lid, name)

    for i in range(n_org):
        hospital = i % 3 == 0
        stem = v.ORG_NAME_STEMS[i % len(v.ORG_NAME_STEMS)]
        suffix = f" {i // len(v.ORG_NAME_STEMS) + 1}" if i >= len(v.ORG_NAME_STEMS) else ""
        name = f"{stem}{suffix} {'General Hospital' if hospital else 'Family Clinic'}"
        oid = new_uuid(rng)
        address = _address(rng)
        organizations.append(
            {
                "resourceType": "Organization",
                "id": oid,
                "meta": stamper.stamp_recent("Organization", rng, created, 180),
                "identifier": [{"system": v.NPI, "value": f"1{npi(i):07d}00"}],
                "active": True,
                "type": v.ORG_TYPE_PROVIDER,
                "name": name,
                "telecom": [{"system": "phone", "value": _phone(rng), "use": "work"}],
                "address": [address],
            }
        )
        org_ref = _ref("Organization", oid, name)
        if hospital:
            site = Site(
                org_ref=org_ref,
                is_hospital=True,
                clinic_ref=location(f"{name} Outpatient Clinic", v.LOC_CLINIC, org_ref, address),
                pediatric_ref=None,
                er_ref=location(f"{name} Emergency Department", v.LOC_ER, org_ref, address),
                ward_ref=location(f"{name} Inpatient Ward", v.LOC_WARD, org_ref, address),
            )
        else:
            site = Site(
                org_ref=org_ref,
                is_hospital=False,
                clinic_ref=location(f"{name} Adult Medicine", v.LOC_CLINIC, org_ref, address),
                pediatric_ref=location(f"{name} Pediatrics", v.LOC_PEDIATRIC, org_ref, address),
                er_ref=None,
                ward_ref=None,
            )
        sites.append(site)

    for j in range(n_prac):
        site = sites[j % n_org]
        female = rng.random() < 0.5
        given = rng.choice(v.GIVEN_FEMALE if female else v.GIVEN_MALE)
        family = rng.choice(v.FAMILY_NAMES)
        given = f"{given}{rng.randrange(1, 1000)}"
        family = f"{family}{rng.randrange(1, 1000)}"
        pid = new_uuid(rng)
        practitioners.append(
            {
                "resourceType": "Practitioner",
                "id": pid,
                "meta": stamper.stamp_recent("Practitioner", rng, created, 180),
                "identifier": [{"system": v.NPI, "value": f"9{npi(n_org + j):07d}99"}],
                "active": True,
                "name": [
                    {"use": "official", "family": family, "given": [given], "prefix": ["Dr."]}
                ],
                "telecom": [
                    {
                        "system": "email",
                        "value": f"{given}.{family}@example.org".lower(),
                        "use": "work",
                    }
                ],
                "address": [_address(rng)],
                "gender": "female" if female else "male",
            }
        )
        site.practitioner_refs.append(_ref("Practitioner", pid, f"Dr. {given} {family}"))

    hospitals = [s for s in sites if s.is_hospital]
    return ProviderPool(organizations, locations, practitioners, sites, hospitals)
