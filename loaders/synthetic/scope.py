"""Per-patient working state shared by the record builders."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from loaders.synthetic.meta import MetaStamper
from loaders.synthetic.people import Person

JSON = dict[str, Any]


@dataclass(slots=True)
class Scope:
    """What every builder of one patient's record needs.

    Attributes:
        rng: The patient's random stream.
        as_of: Epoch seconds the data is current as of.
        stamper: Meta policy of the run.
        bundle: True when references inside the record use ``urn:uuid:`` (bundle format).
        person: The patient.
        out: The patient's resources, in write order.
        condition_refs: Chronic condition key -> reference of its Condition resource.
    """

    rng: random.Random
    as_of: int
    stamper: MetaStamper
    bundle: bool
    person: Person
    out: list[JSON] = field(default_factory=list)
    condition_refs: dict[str, JSON] = field(default_factory=dict)

    def ref(self, rtype: str, rid: str) -> JSON:
        """A reference to a resource of this patient's record."""
        return {"reference": f"urn:uuid:{rid}" if self.bundle else f"{rtype}/{rid}"}

    def meta(self, rtype: str, t: int) -> JSON:
        """Meta for a resource of clinical time ``t``."""
        return self.stamper.stamp(rtype, self.rng, t)
