"""Prescriptions (MedicationRequest) and pharmacy fills (MedicationDispense).

Each chronic condition with a drug starts a *course* at the visit that diagnosed it; yearly
follow-up visits renew it (the renewed request completes the previous one). Fills of a
course run continuously across its requests, each attributed to the request in force, with a
per-patient adherence profile so that the proportion of days covered (PDC) varies: some
patients refill on time, some late, some stop. Fill history covers the last 18 months before
``as_of``. Acute problems get a one-off, non-refillable prescription.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from loaders.synthetic import vocabulary as v
from loaders.synthetic.clock import DAY, HOUR, fhir_instant
from loaders.synthetic.encounters import EMERGENCY, FOLLOW_UP, SYMPTOM, Visit
from loaders.synthetic.ids import new_uuid
from loaders.synthetic.scope import Scope
from loaders.synthetic.vocabulary import ConditionDef, Medication

JSON = dict[str, Any]

#: Fills are written for this window before as_of.
DISPENSE_HISTORY = 548 * DAY
#: A follow-up renews a prescription authored at least this long ago.
RENEW_AFTER = 300 * DAY
VALIDITY = 365 * DAY

_SUPPLY = {
    days: {"value": days, "unit": "days", "system": v.UCUM, "code": "d"} for days in (30, 90)
}

#: name -> (weight, min delay days, max delay days, chance to stop after each fill)
ADHERENCE_PROFILES: dict[str, tuple[float, float, float, float]] = {
    "adherent": (0.55, -4.0, 3.0, 0.0),
    "late": (0.30, 0.0, 20.0, 0.02),
    "poor": (0.15, 5.0, 60.0, 0.2),
}


@dataclass(slots=True)
class _Request:
    authored: int
    validity_end: int
    fills_allowed: int
    ref: JSON
    resource: JSON


@dataclass(slots=True)
class _Course:
    med: Medication
    supply: int
    reason: JSON | None
    requests: list[_Request] = field(default_factory=list)


def chronic_medications(
    rng: random.Random, cond: ConditionDef, chronic: dict[str, int]
) -> tuple[Medication, ...]:
    """The maintenance drug(s) started for a newly diagnosed chronic condition."""
    if cond.key == "hypertension":
        if "ckd" in chronic or rng.random() < 0.6:
            return (v.LISINOPRIL,)
        return (v.AMLODIPINE,)
    return cond.medications


def _quantity(med: Medication, supply: int) -> JSON:
    per = med.units_per_day * supply if med.units_per_day else supply // 30
    return {"value": per, **med.quantity_unit}


class Prescriber:
    """Writes one patient's prescriptions and fills as their visits are processed."""

    __slots__ = ("_adherence", "_courses", "_s")

    def __init__(self, s: Scope) -> None:
        """Create the prescriber of the patient in scope ``s``."""
        self._s = s
        self._courses: list[_Course] = []
        self._adherence: tuple[float, float, float, float] | None = None

    def _request(
        self, visit: Visit, med: Medication, supply: int, repeats: int, reason: JSON | None
    ) -> _Request:
        s = self._s
        rid = new_uuid(s.rng)
        authored = visit.start + (visit.end - visit.start if visit.end else 0) // 2
        validity_end = authored + (VALIDITY if repeats else 30 * DAY)
        alive = s.person.death is None
        resource: JSON = {
            "resourceType": "MedicationRequest",
            "id": rid,
            "meta": s.meta("MedicationRequest", authored),
            "status": "active" if alive and validity_end > s.as_of else "completed",
            "intent": "order",
            "medicationCodeableConcept": med.concept,
            "subject": s.person.subject,
            "encounter": visit.ref,
            "authoredOn": fhir_instant(authored),
            "requester": visit.practitioner,
        }
        if reason is not None:
            resource["reasonReference"] = [reason]
        resource["dosageInstruction"] = [med.dosage]
        resource["dispenseRequest"] = {
            "validityPeriod": {"start": fhir_instant(authored), "end": fhir_instant(validity_end)},
            "numberOfRepeatsAllowed": repeats,
            "quantity": _quantity(med, supply),
            "expectedSupplyDuration": _SUPPLY[supply],
        }
        s.out.append(resource)
        return _Request(
            authored, validity_end, repeats + 1, s.ref("MedicationRequest", rid), resource
        )

    def on_visit(self, visit: Visit, acute_reason: JSON | None) -> None:
        """Prescribe at ``visit``: start, renew, or a one-off for an acute problem.

        Args:
            visit: The visit (its Encounter and conditions have been built).
            acute_reason: Reference of the visit's acute diagnosis, if any.
        """
        s = self._s
        rng = s.rng
        for cond in visit.diagnoses:
            for med in chronic_medications(rng, cond, s.person.chronic):
                supply = 90 if rng.random() < 0.6 else 30
                course = _Course(med, supply, s.condition_refs.get(cond.key))
                course.requests.append(
                    self._request(visit, med, supply, 365 // supply - 1, course.reason)
                )
                self._courses.append(course)
        if visit.kind == FOLLOW_UP:
            for course in self._courses:
                last = course.requests[-1]
                if visit.start - last.authored >= RENEW_AFTER:
                    request = self._request(
                        visit, course.med, course.supply, 365 // course.supply - 1, course.reason
                    )
                    if last.resource["status"] != "completed":
                        last.resource["status"] = "completed"
                        last.resource["meta"] = s.meta("MedicationRequest", request.authored)
                    course.requests.append(request)
        if (
            visit.kind in (SYMPTOM, EMERGENCY)
            and visit.reason is not None
            and visit.reason.medications
            and rng.random() < 0.7
        ):
            self._request(visit, visit.reason.medications[0], 30, 0, acute_reason)

    def finish(self) -> None:
        """Write the fills of every chronic course (call after the last visit)."""
        s = self._s
        if not self._courses:
            return
        rng = s.rng
        if self._adherence is None:
            names = list(ADHERENCE_PROFILES)
            weights = [ADHERENCE_PROFILES[n][0] for n in names]
            self._adherence = ADHERENCE_PROFILES[rng.choices(names, weights)[0]]
        _, lo, hi, stop = self._adherence
        limit = min(s.person.end, s.as_of)
        horizon = s.as_of - DISPENSE_HISTORY
        for course in self._courses:
            self._fills(course, lo, hi, stop, limit, horizon)

    def _fills(
        self, course: _Course, lo: float, hi: float, stop: float, limit: int, horizon: int
    ) -> None:
        s = self._s
        rng = s.rng
        requests = course.requests
        supply_s = course.supply * DAY
        idx, used = 0, 0
        t = requests[0].authored + int(rng.random() * 3 * DAY)
        while t <= limit:
            while idx + 1 < len(requests) and requests[idx + 1].authored <= t:
                idx, used = idx + 1, 0
            request = requests[idx]
            if t > request.validity_end or used >= request.fills_allowed:
                if idx + 1 >= len(requests):
                    break
                t = requests[idx + 1].authored + int(rng.random() * 3 * DAY)
                continue
            handed = t - t % DAY + 9 * HOUR + int(rng.random() * 10 * HOUR)
            if handed < request.authored:
                handed = request.authored
            if handed > limit:
                break
            if handed >= horizon:
                self._dispense(course, request, handed)
            used += 1
            if stop and rng.random() < stop:
                break
            t = handed + supply_s + int((lo + (hi - lo) * rng.random()) * DAY)

    def _dispense(self, course: _Course, request: _Request, handed: int) -> None:
        s = self._s
        s.out.append(
            {
                "resourceType": "MedicationDispense",
                "id": new_uuid(s.rng),
                "meta": s.meta("MedicationDispense", handed),
                "status": "completed",
                "medicationCodeableConcept": course.med.concept,
                "subject": s.person.subject,
                "authorizingPrescription": [request.ref],
                "quantity": _quantity(course.med, course.supply),
                "daysSupply": _SUPPLY[course.supply],
                "whenHandedOver": fhir_instant(handed),
                "dosageInstruction": [course.med.dosage],
            }
        )
