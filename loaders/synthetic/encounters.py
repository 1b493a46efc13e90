"""Encounter planning (when a patient is seen, where, by whom, why) and Encounter resources.

A patient's visits are planned up front as :class:`Visit` objects, sorted by time; the other
builders then attach conditions, observations, procedures, immunizations and prescriptions to
them. Most visits fall in the ten years before ``as_of``; older patients also have one or two
earlier visits. Nothing ends after ``as_of`` (or after death): a stay that would is still
``in-progress``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from loaders.synthetic import vocabulary as v
from loaders.synthetic.clock import DAY, HOUR, MINUTE, YEAR, fhir_instant
from loaders.synthetic.ids import new_uuid
from loaders.synthetic.people import Person
from loaders.synthetic.providers import Site
from loaders.synthetic.scope import Scope
from loaders.synthetic.vocabulary import ConditionDef

JSON = dict[str, Any]

WELLNESS = "wellness"
FOLLOW_UP = "followup"
PROBLEM = "problem"
SYMPTOM = "symptom"
EMERGENCY = "emergency"
INPATIENT = "inpatient"
CHECK_IN = "checkin"  # ambulatory visit in progress at as_of

#: Probability that an inpatient discharge is followed by a readmission within 30 days.
READMISSION_PROBABILITY = 0.14
#: Wellness visits are this much rarer once a chronic condition has begun (follow-ups
#: take their place).
CHRONIC_WELLNESS_GAP_FACTOR = 2.0
_COVID_START = 1_583_020_800  # 2020-03-01

_PARTICIPANT_TYPE = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "PPRF",
                "display": "primary performer",
            }
        ],
        "text": "primary performer",
    }
]
_TYPES = {
    FOLLOW_UP: v.ENC_FOLLOW_UP,
    PROBLEM: v.ENC_PROBLEM,
    SYMPTOM: v.ENC_SYMPTOM,
    EMERGENCY: v.ENC_EMERGENCY,
    INPATIENT: v.ENC_INPATIENT,
    CHECK_IN: v.ENC_SYMPTOM,
}
_CLASSES = {EMERGENCY: v.CLASS_EMER, INPATIENT: v.CLASS_IMP}


@dataclass(slots=True)
class Visit:
    """One planned encounter."""

    kind: str
    start: int
    end: int | None  # None: in progress at as_of
    site: Site
    location: JSON
    practitioner: JSON
    reason: ConditionDef | None = None
    diagnoses: list[ConditionDef] = field(default_factory=list)
    disposition: JSON | None = None
    id: str = ""
    ref: JSON = field(default_factory=dict)


def _business_time(rng: random.Random, t: int) -> int:
    """A 15-minute slot between 08:00 and 17:00 UTC on the day of ``t``."""
    return t - t % DAY + 8 * HOUR + int(rng.random() * 36) * 15 * MINUTE


def _any_time(rng: random.Random, t: int) -> int:
    return t - t % DAY + int(rng.random() * 1440) * MINUTE


def _wellness_gap(age: float) -> float:
    """Mean-ish years between wellness visits (the actual gap is 0.75-1.75 times this)."""
    if age < 2:
        return 1.5
    if age < 18:
        return 3.0
    if age < 65:
        return 4.5
    return 2.5


def _poisson_times(rng: random.Random, rate_per_year: float, lo: int, hi: int) -> list[int]:
    times: list[int] = []
    if rate_per_year <= 0 or hi <= lo:
        return times
    t = lo + int(rng.expovariate(rate_per_year) * YEAR)
    while t < hi:
        times.append(t)
        t += int(rng.expovariate(rate_per_year) * YEAR)
    return times


def plan_visits(rng: random.Random, person: Person, as_of: int) -> list[Visit]:
    """Plan every encounter of a patient, sorted by start time.

    Chronic conditions (``person.chronic``) must already be drawn: each one starting inside
    the history window gets a "problem" visit at onset, earlier ones are recorded at the first
    wellness visit of the window, and patients with chronic conditions get yearly follow-ups.

    Args:
        rng: The patient's random stream.
        person: The patient.
        as_of: Epoch seconds the data is current as of.

    Returns:
        Visits with ids, sites, locations and practitioners assigned.
    """
    end = person.end
    start = person.window_start
    latest = end - 2 * HOUR
    visits: list[Visit] = []
    home, hospital = person.home, person.hospital

    def ambulatory(kind: str, t: int, minutes: tuple[int, int]) -> Visit:
        s = _business_time(rng, t)
        if s >= latest:
            s = latest - int(rng.random() * 6) * 15 * MINUTE
        e = s + (minutes[0] + int(rng.random() * (minutes[1] - minutes[0]))) * MINUTE
        child = person.age_at(s) < 18 and home.pediatric_ref is not None
        prac = person.pcp_ref if rng.random() < 0.9 else rng.choice(home.practitioner_refs)
        loc = home.pediatric_ref if child else home.clinic_ref
        return Visit(kind, s, e, home, loc or home.clinic_ref, prac)

    # Wellness visits: a regular cadence through the window, plus earlier ones for older people.
    t = start + DAY + int(rng.random() * _wellness_gap(person.age_at(start)) * YEAR)
    if t >= latest:
        t = start + int((latest - start) * rng.random())
    while t < latest:
        visits.append(ambulatory(WELLNESS, t, (20, 45)))
        gap = _wellness_gap(person.age_at(t))
        if any(onset <= t for onset in person.chronic.values()):
            gap *= CHRONIC_WELLNESS_GAP_FACTOR
        t += int((gap * 0.75 + gap * rng.random()) * YEAR)
    early_span = start - person.birth - YEAR
    if early_span > 5 * YEAR:
        for _ in range(1 + (early_span > 50 * YEAR)):
            visits.append(
                ambulatory(WELLNESS, person.birth + YEAR + int(early_span * rng.random()), (20, 45))
            )
    visits.sort(key=lambda x: x.start)
    first_recent = next((x for x in visits if x.start >= start), visits[-1])

    # Chronic conditions: diagnosed at onset when recent, else on the first recent wellness visit.
    diagnosis_times: list[int] = []
    for key, onset in person.chronic.items():
        cond = v.CHRONIC_BY_KEY[key]
        if onset >= start:
            visit = ambulatory(PROBLEM, onset + DAY, (20, 40))
            visit.diagnoses.append(cond)
            visits.append(visit)
        else:
            visit = first_recent
            first_recent.diagnoses.append(cond)
        diagnosis_times.append(visit.start)
    if diagnosis_times:
        t = min(diagnosis_times) + YEAR
        while t < latest:  # yearly reviews, which also renew prescriptions
            visits.append(ambulatory(FOLLOW_UP, t + int((rng.random() - 0.5) * 60 * DAY), (15, 30)))
            t += YEAR

    # Acute problems.
    age_end = person.age_at(end)
    for t in _poisson_times(rng, 0.18 if age_end < 18 else 0.1, start, latest):
        visit = ambulatory(SYMPTOM, t, (15, 30))
        if visit.start >= _COVID_START and rng.random() < 0.15:
            visit.reason = v.COVID19
        else:
            visit.reason = rng.choice(v.ACUTE_AMBULATORY)
        visits.append(visit)

    def hospital_visit(kind: str, s: int, e: int | None) -> Visit:
        loc = hospital.er_ref if kind == EMERGENCY else hospital.ward_ref
        return Visit(
            kind, s, e, hospital, loc or hospital.clinic_ref, rng.choice(hospital.practitioner_refs)
        )

    er_rate = 0.03 + (0.04 if age_end >= 65 else 0)
    if "asthma" in person.chronic or "copd" in person.chronic:
        er_rate += 0.04
    for t in _poisson_times(rng, er_rate, start, latest):
        s = _any_time(rng, t)
        e = s + int((1 + 5 * rng.random()) * HOUR)
        if e > end:
            continue
        visit = hospital_visit(EMERGENCY, s, e)
        visit.reason = rng.choice(v.ACUTE_EMERGENCY)
        visits.append(visit)

    imp_rate = 0.01 + (0.04 if age_end >= 65 else 0) + (0.03 if "copd" in person.chronic else 0)
    imp_rate += 0.02 if "ckd" in person.chronic else 0
    admissions = _poisson_times(rng, imp_rate, start, latest)
    while admissions:
        t = admissions.pop(0)
        s = _any_time(rng, t)
        if s >= end:
            continue
        e = s + int((1 + min(9.0, rng.expovariate(1 / 3))) * DAY)
        visit = hospital_visit(INPATIENT, s, e)
        visit.reason = _inpatient_reason(rng, person, s)
        if e > end:
            if person.death is not None:
                continue  # would outlive the patient: dropped
            visit.end = None  # still admitted at as_of
        else:
            visit.disposition = v.DISCHARGE_CONCEPTS[
                rng.choices(range(len(v.DISCHARGE_CONCEPTS)), v.DISCHARGE_WEIGHTS)[0]
            ]
            if rng.random() < READMISSION_PROBABILITY:
                readmit = e + int((1 + 28 * rng.random()) * DAY)
                if readmit < latest:
                    admissions.insert(0, readmit)
        visits.append(visit)

    if person.death is not None and person.died_in_hospital:
        e = person.death
        s = e - int((1 + 6 * rng.random()) * DAY)
        if s > person.birth:
            visit = hospital_visit(INPATIENT, s, e)
            visit.reason = _inpatient_reason(rng, person, s)
            visit.disposition = v.DISCHARGE_EXPIRED
            # Nothing else may overlap the fatal stay or come after it.
            visits = [x for x in visits if (x.end or x.start) < s]
            visits.append(visit)
    elif person.death is None and rng.random() < 0.006:
        s = as_of - int((5 + 45 * rng.random()) * MINUTE)
        visit = Visit(
            CHECK_IN,
            s,
            None,
            home,
            home.clinic_ref,
            person.pcp_ref,
            reason=rng.choice(v.ACUTE_AMBULATORY),
        )
        visits.append(visit)

    visits.sort(key=lambda x: x.start)
    for x in visits:
        x.id = new_uuid(rng)
    return visits


def _inpatient_reason(rng: random.Random, person: Person, t: int) -> ConditionDef:
    if person.has("copd", t) and rng.random() < 0.5:
        return v.COPD_EXACERBATION
    if person.age_at(t) < 50:
        return rng.choice((v.ACUTE_INPATIENT[0], v.ACUTE_INPATIENT[4]))  # pneumonia, sepsis
    return rng.choice(v.ACUTE_INPATIENT)


def encounter_resource(s: Scope, visit: Visit) -> JSON:
    """Build the Encounter resource of a planned visit (and set ``visit.ref``).

    Args:
        s: The patient's scope.
        visit: The planned visit.

    Returns:
        The Encounter resource.
    """
    visit.ref = s.ref("Encounter", visit.id)
    kind = visit.kind
    if visit.end is None:
        period = {"start": fhir_instant(visit.start)}
        status = "in-progress"
        t = visit.start
    else:
        period = {"start": fhir_instant(visit.start), "end": fhir_instant(visit.end)}
        status = "finished"
        t = visit.end
    if kind == WELLNESS:
        etype = v.ENC_WELL_CHILD if s.person.age_at(visit.start) < 18 else v.ENC_GENERAL_EXAM
    else:
        etype = _TYPES[kind]
    resource: JSON = {
        "resourceType": "Encounter",
        "id": visit.id,
        "meta": s.meta("Encounter", t),
        "status": status,
        "class": _CLASSES.get(kind, v.CLASS_AMB),
        "type": etype,
        "subject": s.person.subject,
        "participant": [{"type": _PARTICIPANT_TYPE, "individual": visit.practitioner}],
        "period": period,
    }
    if visit.reason is not None:
        resource["reasonCode"] = [visit.reason.concept]
    if visit.disposition is not None:
        resource["hospitalization"] = {"dischargeDisposition": visit.disposition}
    resource["location"] = [{"location": visit.location}]
    resource["serviceProvider"] = visit.site.org_ref
    return resource
