"""Patients: demographics, names, addresses, identifiers, vital status, the Patient resource."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from loaders.synthetic import vocabulary as v
from loaders.synthetic.clock import DAY, YEAR, fhir_date, fhir_instant
from loaders.synthetic.ids import Permutation, new_uuid
from loaders.synthetic.providers import ProviderPool, Site

JSON = dict[str, Any]

#: (min age, max age, weight) of the age distribution (years at as_of).
_AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (0, 18, 0.22),
    (18, 45, 0.36),
    (45, 65, 0.25),
    (65, 85, 0.14),
    (85, 101, 0.03),
)
_AGE_WEIGHTS = tuple(w for _, _, w in _AGE_BANDS)
_GENDERS = ("female", "male", "other", "unknown")
_GENDER_WEIGHTS = (0.495, 0.495, 0.006, 0.004)
_MIN_AGE_SECONDS = 14 * DAY
#: History window: most encounters happen in the last ten years before as_of.
HISTORY = 10 * YEAR


def _death_probability(age: float) -> float:
    if age < 40:
        return 0.003
    if age < 65:
        return 0.02
    if age < 85:
        return 0.13
    return 0.35


@dataclass(slots=True)
class Person:
    """Everything about a patient the rest of the record is planned from."""

    index: int
    id: str
    gender: str  # administrative gender written to Patient.gender
    sex: str  # "male"/"female": drives physiology and names
    birth: int
    death: int | None
    died_in_hospital: bool
    end: int  # death time, or as_of when alive
    window_start: int  # start of the recent history window
    home: Site
    pcp_ref: JSON
    hospital: Site
    height_z: float
    bmi_factor: float  # child BMI multiplier around the median
    adult_bmi: float  # set once conditions are known
    chronic: dict[str, int] = field(default_factory=dict)  # condition key -> onset time
    subject: JSON = field(default_factory=dict)  # {"reference": ...} for Patient references

    def age_at(self, t: int) -> float:
        """Age in years at epoch seconds ``t``."""
        return (t - self.birth) / YEAR

    def has(self, key: str, t: int) -> bool:
        """Whether chronic condition ``key`` has started by time ``t``."""
        onset = self.chronic.get(key)
        return onset is not None and onset <= t


class IdentifierFactory:
    """Unique MRN and SSN values per patient index (seeded permutations, no collisions)."""

    __slots__ = ("_mrn", "_ssn")

    def __init__(self, rng: random.Random) -> None:
        """Draw the permutations from ``rng``."""
        self._mrn = Permutation(rng, 10**8)
        self._ssn = Permutation(rng, 10**6)

    def mrn(self, index: int) -> str:
        """The MRN value of patient ``index`` (``MRN-`` + 8 digits)."""
        return f"MRN-{self._mrn(index):08d}"

    def ssn(self, index: int) -> str:
        """A synthetic SSN (``999-`` prefix: never issued to a real person)."""
        d = f"{self._ssn(index):06d}"
        return f"999-{d[:2]}-{d[2:]}"


def make_person(
    rng: random.Random, index: int, as_of: int, pool: ProviderPool, bundle_refs: bool
) -> Person:
    """Draw a patient's demographics and vital status.

    Args:
        rng: The patient's random stream.
        index: 0-based patient number in the run.
        as_of: Epoch seconds the data is current as of.
        pool: Shared providers (home clinic, PCP, nearest hospital).
        bundle_refs: Reference the patient as ``urn:uuid:<id>`` (bundle format).

    Returns:
        The person.
    """
    pid = new_uuid(rng)
    lo, hi, _ = rng.choices(_AGE_BANDS, _AGE_WEIGHTS)[0]
    age = lo + (hi - lo) * rng.random()
    birth = min(as_of - int(age * YEAR), as_of - _MIN_AGE_SECONDS)
    birth -= birth % 60
    gender = rng.choices(_GENDERS, _GENDER_WEIGHTS)[0]
    sex = gender if gender in ("male", "female") else ("female" if rng.random() < 0.5 else "male")

    death: int | None = None
    died_in_hospital = False
    if rng.random() < _death_probability(age):
        earliest = max(birth + 30 * DAY, as_of - HISTORY + 90 * DAY)
        latest = as_of - DAY
        if latest > earliest:
            death = earliest + int((latest - earliest) * rng.random())
            death -= death % 60
            died_in_hospital = rng.random() < 0.4
    end = death if death is not None else as_of
    window_start = max(birth, as_of - HISTORY)

    home = rng.choice(pool.sites)
    hospital = home if home.is_hospital else rng.choice(pool.hospitals)
    subject = {"reference": f"urn:uuid:{pid}" if bundle_refs else f"Patient/{pid}"}
    return Person(
        index=index,
        id=pid,
        gender=gender,
        sex=sex,
        birth=birth,
        death=death,
        died_in_hospital=died_in_hospital,
        end=end,
        window_start=window_start,
        home=home,
        pcp_ref=rng.choice(home.practitioner_refs),
        hospital=hospital,
        height_z=max(-2.5, min(2.5, rng.gauss(0.0, 1.0))),
        bmi_factor=max(0.85, min(1.2, rng.gauss(1.0, 0.07))),
        adult_bmi=0.0,
        subject=subject,
    )


def patient_resource(
    rng: random.Random, person: Person, ids: IdentifierFactory, meta: JSON
) -> JSON:
    """Build the Patient resource.

    Names are synthetic-but-realistic with digits appended (``Smith123``) so PHI scanners
    can recognise them; SSNs use the never-issued ``999`` area.

    Args:
        rng: The patient's random stream.
        person: The drawn person.
        ids: MRN/SSN factory.
        meta: The resource's meta element.

    Returns:
        The Patient resource.
    """
    female = person.sex == "female"
    given = rng.choice(v.GIVEN_FEMALE if female else v.GIVEN_MALE) + str(rng.randrange(1, 1000))
    middle = rng.choice(v.GIVEN_FEMALE if female else v.GIVEN_MALE) + str(rng.randrange(1, 1000))
    family = rng.choice(v.FAMILY_NAMES) + str(rng.randrange(1, 1000))
    age = person.age_at(person.end)
    name: JSON = {"use": "official", "family": family, "given": [given, middle]}
    if age >= 18:
        name["prefix"] = ["Ms." if female else "Mr."]
    if age >= 18:
        u = rng.random()
        marital = "M" if u < 0.5 else "S" if u < 0.75 else "D" if u < 0.9 else "W"
    else:
        marital = "S"
    city, state, zip3 = rng.choice(v.CITIES)
    race = rng.choices(v.RACE_EXTENSIONS, v.RACE_WEIGHTS)[0]
    ethnicity = v.ETHNICITY_EXTENSIONS[0 if rng.random() < 0.18 else 1]
    resource: JSON = {
        "resourceType": "Patient",
        "id": person.id,
        "meta": meta,
        "extension": [race, ethnicity],
        "identifier": [
            {
                "use": "usual",
                "type": v.MRN_TYPE,
                "system": v.MRN,
                "value": ids.mrn(person.index),
            },
            {"type": v.SSN_TYPE, "system": v.SSN, "value": ids.ssn(person.index)},
        ],
        "name": [name],
        "telecom": [
            {
                "system": "phone",
                "value": f"555-{rng.randrange(100, 1000)}-{rng.randrange(10000):04d}",
                "use": "home",
            }
        ],
        "gender": person.gender,
        "birthDate": fhir_date(person.birth),
    }
    if person.death is not None:
        resource["deceasedDateTime"] = fhir_instant(person.death)
    resource["address"] = [
        {
            "use": "home",
            "line": [
                f"{rng.randrange(1, 9999)} {rng.choice(v.STREET_NAMES)} "
                f"{rng.choice(v.STREET_SUFFIXES)}"
            ],
            "city": city,
            "state": state,
            "postalCode": f"{zip3}{rng.randrange(100):02d}",
            "country": "US",
        }
    ]
    resource["maritalStatus"] = v.MARITAL_STATUS[marital]
    resource["communication"] = v.COMMUNICATION_EN
    resource["generalPractitioner"] = [person.pcp_ref]
    resource["managingOrganization"] = person.home.org_ref
    return resource
