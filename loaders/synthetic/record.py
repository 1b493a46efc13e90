"""Assembles one patient's complete record: Patient, encounters and everything attached."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from loaders.synthetic.clinical import allergies, plan_chronic_conditions, visit_content
from loaders.synthetic.clock import YEAR
from loaders.synthetic.encounters import WELLNESS, encounter_resource, plan_visits
from loaders.synthetic.medications import Prescriber
from loaders.synthetic.meta import MetaStamper
from loaders.synthetic.people import IdentifierFactory, make_person, patient_resource
from loaders.synthetic.providers import ProviderPool
from loaders.synthetic.scope import Scope

JSON = dict[str, Any]

#: Patients' charts were touched within this many days before as_of.
PATIENT_TOUCH_DAYS = 30


@dataclass(frozen=True, slots=True)
class RunContext:
    """Run-wide inputs of :func:`build_record`."""

    as_of: int
    stamper: MetaStamper
    pool: ProviderPool
    ids: IdentifierFactory
    bundle: bool


def build_record(rng: random.Random, index: int, run: RunContext) -> list[JSON]:
    """Generate every resource of one patient, the Patient resource first.

    Args:
        rng: The patient's own random stream.
        index: 0-based patient number in the run (drives MRN/SSN uniqueness).
        run: Run-wide context.

    Returns:
        The patient's resources in write order.
    """
    person = make_person(rng, index, run.as_of, run.pool, run.bundle)
    plan_chronic_conditions(rng, person)
    visits = plan_visits(rng, person, run.as_of)
    s = Scope(rng, run.as_of, run.stamper, run.bundle, person)
    meta = run.stamper.stamp_recent("Patient", rng, person.birth, PATIENT_TOUCH_DAYS)
    s.out.append(patient_resource(rng, person, run.ids, meta))
    prescriber = Prescriber(s)
    last_td = [person.birth - 100 * YEAR]
    wellness = []
    for visit in visits:
        s.out.append(encounter_resource(s, visit))
        acute_reason = visit_content(s, visit, last_td)
        prescriber.on_visit(visit, acute_reason)
        if visit.kind == WELLNESS:
            wellness.append(visit)
    allergies(s, wellness)
    prescriber.finish()
    return s.out
