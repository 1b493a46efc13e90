"""Clinical content: chronic conditions, Condition, Observation, Procedure, Immunization and
AllergyIntolerance resources.

Values are physiologically plausible and coherent within a patient: height follows a growth
curve and a per-patient percentile, BMI stays in its class (obese patients >= 30, others
< 30) and weight is derived from it, diabetics have higher glucose and HbA1c, hypertensive
patients higher blood pressure.
"""

from __future__ import annotations

import bisect
import random
from typing import Any

from loaders.synthetic import vocabulary as v
from loaders.synthetic.clock import DAY, HOUR, MINUTE, YEAR, fhir_instant
from loaders.synthetic.encounters import (
    CHECK_IN,
    EMERGENCY,
    FOLLOW_UP,
    INPATIENT,
    PROBLEM,
    SYMPTOM,
    WELLNESS,
    Visit,
)
from loaders.synthetic.ids import new_uuid
from loaders.synthetic.people import Person
from loaders.synthetic.scope import Scope
from loaders.synthetic.vocabulary import ConditionDef, ObservationDef

JSON = dict[str, Any]

_UCUM = v.UCUM
_ALT_UNIT_SHARE = 0.2
_COVID_VACCINE_START = 1_609_459_200  # 2021-01-01


# --- chronic conditions ------------------------------------------------------------------------
def _chronic_probability(key: str, age: float, chronic: dict[str, int]) -> tuple[float, int]:
    """(probability of ever having it by the end, minimum onset age)."""
    if key == "diabetes":
        return (min(0.22, 0.03 + 0.003 * (age - 30)) if age >= 30 else 0.0), 30
    if key == "hypertension":
        return (min(0.6, 0.011 * (age - 25)) if age >= 25 else 0.0), 25
    if key == "hyperlipidemia":
        return (min(0.4, 0.008 * (age - 30)) if age >= 30 else 0.0), 30
    if key == "asthma":
        return (0.08 if age >= 3 else 0.0), 3
    if key == "copd":
        return (min(0.12, 0.004 * (age - 45)) if age >= 45 else 0.0), 45
    if key == "ckd":
        risk = 0.08 if ("diabetes" in chronic or "hypertension" in chronic) else 0.0
        return ((0.03 + risk) if age >= 50 else 0.0), 50
    # obesity
    return ((0.45 if "diabetes" in chronic else 0.3) if age >= 18 else 0.0), 18


def plan_chronic_conditions(rng: random.Random, person: Person) -> None:
    """Draw which chronic conditions the patient has and when each began.

    Fills ``person.chronic`` (key -> onset time) and ``person.adult_bmi``.

    Args:
        rng: The patient's random stream.
        person: The patient.
    """
    age = person.age_at(person.end)
    latest = person.end - 30 * DAY
    for cond in v.CHRONIC_CONDITIONS:
        p, min_age = _chronic_probability(cond.key, age, person.chronic)
        if p <= 0 or rng.random() >= p:
            continue
        lo = person.birth + min_age * YEAR
        if latest <= lo:
            continue
        person.chronic[cond.key] = lo + int((latest - lo) * rng.random() ** 0.5)
    if "obesity" in person.chronic:
        person.adult_bmi = min(45.0, 30.5 + rng.expovariate(1 / 4))
    else:
        person.adult_bmi = max(18.7, min(29.4, rng.gauss(25.0, 2.6)))


# --- physiology --------------------------------------------------------------------------------
_GROWTH_AGES = (0, 0.5, 1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18)
_HEIGHT_M = (50, 67, 76, 88, 96, 103, 110, 116, 128, 138, 149, 164, 174, 177)
_HEIGHT_F = (49, 65, 74, 86, 95, 102, 109, 115, 127, 138, 151, 160, 163, 163)
_CHILD_BMI = (13.4, 17.0, 17.2, 16.4, 16.0, 15.7, 15.5, 15.5, 16.0, 16.9, 18.0, 19.4, 20.6, 21.8)


def _interp(age: float, values: tuple[float, ...]) -> float:
    i = bisect.bisect_right(_GROWTH_AGES, age)
    if i >= len(_GROWTH_AGES):
        return values[-1]
    a0, a1 = _GROWTH_AGES[i - 1], _GROWTH_AGES[i]
    return values[i - 1] + (values[i] - values[i - 1]) * (age - a0) / (a1 - a0)


def body_size(person: Person, t: int) -> tuple[float, float, float]:
    """Height (cm, 1 dp), weight (kg, 1 dp) and BMI (kg/m2, 1 dp) of a patient at ``t``.

    BMI is recomputed from the rounded height and weight so the three values agree.
    """
    age = person.age_at(t)
    table = _HEIGHT_F if person.sex == "female" else _HEIGHT_M
    median = _interp(age, table)
    if age > 70:
        median -= (age - 70) * 0.15
    height = round(median * (1 + 0.04 * person.height_z), 1)
    if age < 18:
        bmi = _interp(age, _CHILD_BMI) * person.bmi_factor
        if age >= 17:  # blend into the adult value
            bmi += (person.adult_bmi - bmi) * (age - 17)
    else:
        bmi = person.adult_bmi
    weight = round(bmi * (height / 100) ** 2, 1)
    bmi = round(weight / (height / 100) ** 2, 1)
    if age >= 18:  # keep the class exact after rounding
        bmi = max(bmi, 30.0) if "obesity" in person.chronic else min(bmi, 29.9)
    return height, weight, bmi


def _heart_rate(rng: random.Random, age: float, emergency: bool) -> int:
    if age < 1:
        mean, sd = 135, 10
    elif age < 6:
        mean, sd = 110, 10
    elif age < 13:
        mean, sd = 90, 9
    elif age < 18:
        mean, sd = 80, 9
    else:
        mean, sd = 73, 9
    if emergency:
        mean += 12
    return int(max(45, min(180, rng.gauss(mean, sd))))


def _blood_pressure(rng: random.Random, age: float, hypertensive: bool) -> tuple[int, int]:
    if hypertensive:
        sys_, dia = rng.gauss(142, 11), rng.gauss(88, 7)
    elif age < 18:
        sys_, dia = rng.gauss(102, 8), rng.gauss(63, 6)
    else:
        sys_, dia = rng.gauss(117, 8), rng.gauss(75, 6)
    sys_ = int(max(85, min(200, sys_)))
    dia = int(max(45, min(sys_ - 25, dia)))
    return sys_, dia


def _glucose_mg_dl(rng: random.Random, diabetic: bool) -> float:
    if diabetic:
        return float(int(max(100, min(400, rng.gauss(165, 35)))))
    return float(int(max(70, min(110, rng.gauss(90, 8)))))


def _hba1c(rng: random.Random, diabetic: bool) -> float:
    if diabetic:
        return round(max(6.5, min(13.0, rng.gauss(7.8, 1.1))), 1)
    return round(max(4.5, min(5.6, rng.gauss(5.3, 0.25))), 1)


# --- observations ------------------------------------------------------------------------------
def _observation(
    s: Scope, d: ObservationDef, visit: Visit, eff: str, issued_t: int, issued: str
) -> JSON:
    return {
        "resourceType": "Observation",
        "id": new_uuid(s.rng),
        "meta": s.meta("Observation", issued_t),
        "status": "final",
        "category": d.category,
        "code": d.concept,
        "subject": s.person.subject,
        "encounter": visit.ref,
        "effectiveDateTime": eff,
        "issued": issued,
    }


def _quantity(
    s: Scope,
    d: ObservationDef,
    visit: Visit,
    eff: str,
    issued_t: int,
    issued: str,
    value: float,
    unit: str,
) -> JSON:
    obs = _observation(s, d, visit, eff, issued_t, issued)
    obs["valueQuantity"] = {"value": value, "unit": unit, "system": _UCUM, "code": unit}
    return obs


def vital_signs(s: Scope, visit: Visit, full: bool, heart_rate: bool = True) -> None:
    """Append vital-sign observations taken at a visit.

    Args:
        s: The patient's scope.
        visit: The visit (its Encounter must already be built).
        full: Body measurements (height, weight, BMI) too, not only heart rate and blood
            pressure.
        heart_rate: Whether the heart rate is recorded (blood pressure always is, from age 3).
    """
    rng, person, out = s.rng, s.person, s.out
    t = visit.start + int(5 + 10 * rng.random()) * MINUTE
    if t > s.as_of:
        t = s.as_of
    issued_t = min(t + int(rng.random() * 30) * MINUTE, s.as_of)
    eff, issued = fhir_instant(t), fhir_instant(issued_t)
    age = person.age_at(t)
    if heart_rate or age < 3:
        out.append(
            _quantity(
                s,
                v.OBS_HEART_RATE,
                visit,
                eff,
                issued_t,
                issued,
                _heart_rate(rng, age, visit.kind == EMERGENCY),
                "/min",
            )
        )
    if age >= 3:
        sys_, dia = _blood_pressure(rng, age, person.has("hypertension", t))
        bp = _observation(s, v.OBS_BLOOD_PRESSURE, visit, eff, issued_t, issued)
        bp["component"] = [
            {
                "code": v.OBS_SYSTOLIC.concept,
                "valueQuantity": {
                    "value": sys_,
                    "unit": "mm[Hg]",
                    "system": _UCUM,
                    "code": "mm[Hg]",
                },
            },
            {
                "code": v.OBS_DIASTOLIC.concept,
                "valueQuantity": {
                    "value": dia,
                    "unit": "mm[Hg]",
                    "system": _UCUM,
                    "code": "mm[Hg]",
                },
            },
        ]
        out.append(bp)
    if not full:
        return
    height, weight, bmi = body_size(person, t)
    out.append(_quantity(s, v.OBS_HEIGHT, visit, eff, issued_t, issued, height, "cm"))
    if rng.random() < _ALT_UNIT_SHARE:
        out.append(
            _quantity(
                s,
                v.OBS_WEIGHT,
                visit,
                eff,
                issued_t,
                issued,
                round(weight * v.LB_PER_KG, 1),
                "[lb_av]",
            )
        )
    else:
        out.append(_quantity(s, v.OBS_WEIGHT, visit, eff, issued_t, issued, weight, "kg"))
    if age >= 2:
        out.append(_quantity(s, v.OBS_BMI, visit, eff, issued_t, issued, bmi, "kg/m2"))


def laboratory(s: Scope, visit: Visit, glucose: bool, hba1c: bool) -> None:
    """Append blood glucose and/or HbA1c results drawn at a visit.

    Args:
        s: The patient's scope.
        visit: The visit.
        glucose: Whether to draw glucose.
        hba1c: Whether to draw HbA1c.
    """
    rng, as_of = s.rng, s.as_of
    t = min(visit.start + int(10 + 20 * rng.random()) * MINUTE, as_of)
    issued_t = min(t + int((1 + 5 * rng.random()) * HOUR), as_of)
    eff, issued = fhir_instant(t), fhir_instant(issued_t)
    diabetic = s.person.has("diabetes", t)
    if glucose:
        mg = _glucose_mg_dl(rng, diabetic)
        if rng.random() < _ALT_UNIT_SHARE:
            s.out.append(
                _quantity(
                    s,
                    v.OBS_GLUCOSE,
                    visit,
                    eff,
                    issued_t,
                    issued,
                    round(mg / v.MG_DL_PER_MMOL_L, 1),
                    "mmol/L",
                )
            )
        else:
            s.out.append(_quantity(s, v.OBS_GLUCOSE, visit, eff, issued_t, issued, mg, "mg/dL"))
    if hba1c:
        s.out.append(
            _quantity(s, v.OBS_HBA1C, visit, eff, issued_t, issued, _hba1c(rng, diabetic), "%")
        )


# --- conditions --------------------------------------------------------------------------------
def chronic_condition(s: Scope, visit: Visit, cond: ConditionDef) -> JSON:
    """Append the Condition of a chronic problem recorded at ``visit``; return its reference."""
    cid = new_uuid(s.rng)
    onset = min(s.person.chronic.get(cond.key, visit.start), visit.start)
    s.out.append(
        {
            "resourceType": "Condition",
            "id": cid,
            "meta": s.meta("Condition", visit.end or visit.start),
            "clinicalStatus": v.CLINICAL_ACTIVE,
            "verificationStatus": v.VERIFICATION_CONFIRMED,
            "category": v.CATEGORY_PROBLEM_LIST,
            "code": cond.concept,
            "subject": s.person.subject,
            "encounter": visit.ref,
            "onsetDateTime": fhir_instant(onset),
            "recordedDate": fhir_instant(visit.start),
        }
    )
    ref = s.ref("Condition", cid)
    s.condition_refs[cond.key] = ref
    return ref


def acute_condition(s: Scope, visit: Visit, cond: ConditionDef) -> JSON:
    """Append the encounter diagnosis of an acute problem; resolved when it has abated."""
    rng = s.rng
    cid = new_uuid(rng)
    onset = visit.start - (int(rng.random() * 3 * DAY) if visit.kind == SYMPTOM else 0)
    lo, hi = cond.resolve_days
    abatement = visit.start + int((lo + (hi - lo) * rng.random()) * DAY)
    resolved = abatement <= s.person.end and visit.disposition is not v.DISCHARGE_EXPIRED
    resource: JSON = {
        "resourceType": "Condition",
        "id": cid,
        "meta": s.meta("Condition", abatement if resolved else (visit.end or visit.start)),
        "clinicalStatus": v.CLINICAL_RESOLVED if resolved else v.CLINICAL_ACTIVE,
        "verificationStatus": v.VERIFICATION_CONFIRMED,
        "category": v.CATEGORY_ENCOUNTER_DX,
        "code": cond.concept,
        "subject": s.person.subject,
        "encounter": visit.ref,
        "onsetDateTime": fhir_instant(onset),
    }
    if resolved:
        resource["abatementDateTime"] = fhir_instant(abatement)
    resource["recordedDate"] = fhir_instant(visit.start)
    s.out.append(resource)
    return s.ref("Condition", cid)


# --- procedures --------------------------------------------------------------------------------
def procedure(
    s: Scope,
    visit: Visit,
    code: JSON,
    minutes: int,
    at: int | None = None,
    reason: JSON | None = None,
) -> None:
    """Append a completed Procedure done during ``visit``.

    Short procedures get ``performedDateTime``; longer ones ``performedPeriod``.
    """
    rng = s.rng
    start = at if at is not None else visit.start + int(5 + 20 * rng.random()) * MINUTE
    end = start + minutes * MINUTE
    limit = visit.end or s.as_of
    if end > limit:
        end = limit
        start = min(start, end)
    resource: JSON = {
        "resourceType": "Procedure",
        "id": new_uuid(rng),
        "meta": s.meta("Procedure", end),
        "status": "completed",
        "code": code,
        "subject": s.person.subject,
        "encounter": visit.ref,
    }
    if minutes >= 30:
        resource["performedPeriod"] = {"start": fhir_instant(start), "end": fhir_instant(end)}
    else:
        resource["performedDateTime"] = fhir_instant(start)
    if reason is not None:
        resource["reasonReference"] = [reason]
    s.out.append(resource)


# --- immunizations -----------------------------------------------------------------------------
def _immunization(s: Scope, visit: Visit, vaccine: JSON, t: int) -> None:
    s.out.append(
        {
            "resourceType": "Immunization",
            "id": new_uuid(s.rng),
            "meta": s.meta("Immunization", t),
            "status": "completed",
            "vaccineCode": vaccine,
            "patient": s.person.subject,
            "encounter": visit.ref,
            "occurrenceDateTime": fhir_instant(t),
            "primarySource": True,
            "location": visit.location,
        }
    )


def immunizations(s: Scope, visit: Visit, last_td: list[int]) -> None:
    """Append vaccines given at a wellness visit (age-appropriate schedule, flu, COVID-19).

    Args:
        s: The patient's scope.
        visit: A wellness visit.
        last_td: One-element list holding the time of the last Td/Tdap dose (updated).
    """
    rng, person = s.rng, s.person
    t = min(visit.start + int(20 + 10 * rng.random()) * MINUTE, visit.end or s.as_of)
    age = person.age_at(t)
    given: list[JSON] = []
    if age < 2:
        given += [v.VAX_DTAP, v.VAX_IPV, v.VAX_HEPB, v.VAX_PCV13][: 1 + int(rng.random() * 4)]
    elif 4 <= age < 7 and rng.random() < 0.7:
        given += [v.VAX_MMR, v.VAX_VARICELLA]
    elif 11 <= age < 13 and rng.random() < 0.7:
        given += [v.VAX_TDAP, v.VAX_HPV]
        last_td[0] = t
    if age >= 0.5 and rng.random() < 0.3:
        given.append(v.VAX_FLU)
    if age >= 18 and t - last_td[0] > 10 * YEAR and rng.random() < 0.5:
        given.append(v.VAX_TD)
        last_td[0] = t
    if age >= 5 and t >= _COVID_VACCINE_START and rng.random() < 0.3:
        given.append(v.VAX_COVID)
    if age >= 65 and rng.random() < 0.15:
        given.append(v.VAX_PPSV23)
    for vaccine in given:
        _immunization(s, visit, vaccine, t)


# --- allergies ---------------------------------------------------------------------------------
def allergies(s: Scope, wellness: list[Visit]) -> None:
    """Append the patient's allergies, each recorded at one of their wellness visits."""
    rng = s.rng
    u = rng.random()
    n = 2 if u < 0.07 else 1 if u < 0.27 else 0
    if not n or not wellness:
        return
    for allergen, category in rng.sample(v.ALLERGENS, n):
        visit = rng.choice(wellness)
        t = visit.start + 10 * MINUTE
        severe = rng.random() < 0.15
        s.out.append(
            {
                "resourceType": "AllergyIntolerance",
                "id": new_uuid(rng),
                "meta": s.meta("AllergyIntolerance", t),
                "clinicalStatus": v.ALLERGY_ACTIVE if rng.random() < 0.9 else v.ALLERGY_INACTIVE,
                "verificationStatus": (
                    v.ALLERGY_CONFIRMED if rng.random() < 0.85 else v.ALLERGY_UNCONFIRMED
                ),
                "type": "allergy",
                "category": [category],
                "criticality": "high"
                if severe
                else ("low" if rng.random() < 0.8 else "unable-to-assess"),
                "code": allergen,
                "patient": s.person.subject,
                "encounter": visit.ref,
                "recordedDate": fhir_instant(t),
                "reaction": [
                    {
                        "manifestation": [
                            v.REACTIONS[4] if severe else rng.choice(v.REACTIONS[:4])
                        ],
                        "severity": "severe" if severe else "mild",
                    }
                ],
            }
        )


# --- per-visit content ---------------------------------------------------------------------------
def visit_content(s: Scope, visit: Visit, last_td: list[int]) -> JSON | None:
    """Append the clinical resources (not prescriptions) produced by one visit.

    Args:
        s: The patient's scope.
        visit: The visit, whose Encounter has been built.
        last_td: Tetanus booster bookkeeping for :func:`immunizations`.

    Returns:
        The reference of the visit's acute diagnosis, if it has one.
    """
    rng, person = s.rng, s.person
    kind = visit.kind
    age = person.age_at(visit.start)
    reason: JSON | None = None
    for cond in visit.diagnoses:
        chronic_condition(s, visit, cond)
    if kind == WELLNESS:
        vital_signs(s, visit, full=True)
        if age >= 18:
            diabetic = person.has("diabetes", visit.start)
            a1c = diabetic or (age >= 45 and rng.random() < 0.1)
            glucose = diabetic or rng.random() < 0.3
            if glucose or a1c:
                laboratory(s, visit, glucose=glucose, hba1c=a1c)
            if rng.random() < 0.25:
                procedure(s, visit, v.PROC_DEPRESSION_SCREEN, 10)
            if age >= 50 and rng.random() < 0.05:
                procedure(s, visit, v.PROC_COLONOSCOPY, 45)
        immunizations(s, visit, last_td)
    elif kind == FOLLOW_UP:
        vital_signs(s, visit, full=False, heart_rate=rng.random() < 0.3)
        if person.has("diabetes", visit.start):
            laboratory(s, visit, glucose=True, hba1c=True)
        if rng.random() < 0.2:
            procedure(s, visit, v.PROC_MED_RECONCILIATION, 10)
    elif kind == PROBLEM:
        vital_signs(s, visit, full=False, heart_rate=rng.random() < 0.5)
        keys = {c.key for c in visit.diagnoses}
        if "diabetes" in keys:
            laboratory(s, visit, glucose=True, hba1c=True)
        if "copd" in keys or "asthma" in keys:
            procedure(s, visit, v.PROC_SPIROMETRY, 20)
    elif kind in (SYMPTOM, EMERGENCY, INPATIENT):
        reason = acute_condition(s, visit, visit.reason) if visit.reason else None
        vital_signs(s, visit, full=False)
        if kind == INPATIENT:
            laboratory(s, visit, glucose=True, hba1c=person.has("diabetes", visit.start))
            stay = (visit.end or s.as_of) - visit.start
            for code in visit.reason.procedures if visit.reason else ():
                at = visit.start + int(stay * 0.3 * rng.random())
                procedure(s, visit, code, 30 + int(rng.random() * 150), at=at, reason=reason)
            if person.has("ckd", visit.start) and rng.random() < 0.3:
                procedure(
                    s,
                    visit,
                    v.PROC_HEMODIALYSIS,
                    240,
                    at=visit.start + 12 * HOUR,
                    reason=s.condition_refs.get("ckd"),
                )
        elif visit.reason is not None:
            for code in visit.reason.procedures:
                procedure(s, visit, code, 15 + int(rng.random() * 30), reason=reason)
    elif kind == CHECK_IN:
        vital_signs(s, visit, full=False)
    return reason
