"""Planted data-quality defects and their manifest (``_defects.json``).

With ``defect_rate`` r > 0 every eligible resource independently gets one of the defect
kinds it is eligible for, each with probability r (scaled down when r x kinds > 1), and the
first eligible resource of each kind always gets it, so every kind appears at least once.
A resource carries at most one defect. Defects draw from their own random stream, so the
clean resources of a run are identical whatever the rate.

Clean data never trips these rules: encounters never start or end after ``as_of`` or end
before they start, MRNs are unique, genders are valid codes, and units come from the fixed
lists in :mod:`loaders.synthetic.vocabulary`.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from loaders.synthetic import vocabulary as v
from loaders.synthetic.clock import DAY, MINUTE, fhir_instant, from_epoch
from loaders.synthetic.ids import new_uuid

logger = logging.getLogger(__name__)

JSON = dict[str, Any]

FUTURE_DATED_ENCOUNTER = "future_dated_encounter"
INVALID_GENDER_CODE = "invalid_gender_code"
DUPLICATE_MRN = "duplicate_mrn"
WRONG_UNIT_FOR_LOINC = "wrong_unit_for_loinc"
MISSING_PATIENT_REFERENCE = "missing_patient_reference"
END_BEFORE_START = "end_before_start"
DEFECT_KINDS: tuple[str, ...] = (
    FUTURE_DATED_ENCOUNTER,
    INVALID_GENDER_CODE,
    DUPLICATE_MRN,
    WRONG_UNIT_FOR_LOINC,
    MISSING_PATIENT_REFERENCE,
    END_BEFORE_START,
)
PATHS: dict[str, str] = {
    FUTURE_DATED_ENCOUNTER: "Encounter.period.start",
    INVALID_GENDER_CODE: "Patient.gender",
    DUPLICATE_MRN: "Patient.identifier",
    WRONG_UNIT_FOR_LOINC: "Observation.valueQuantity.code",
    MISSING_PATIENT_REFERENCE: "Encounter.subject",
    END_BEFORE_START: "Encounter.period",
}
RESOURCE_TYPES: dict[str, str] = {kind: path.split(".")[0] for kind, path in PATHS.items()}
#: Values planted by invalid_gender_code (none is a FHIR administrative-gender code).
INVALID_GENDERS: tuple[str, ...] = ("M", "F", "femal", "u", "Male", "unk")
MANIFEST_NAME = "_defects.json"

_FINISHED_ENCOUNTER_KINDS = (FUTURE_DATED_ENCOUNTER, MISSING_PATIENT_REFERENCE, END_BEFORE_START)
_OPEN_ENCOUNTER_KINDS = (MISSING_PATIENT_REFERENCE,)
_OBSERVATION_KINDS = (WRONG_UNIT_FOR_LOINC,)
_POOL_CAP = 4096


def _epoch(value: str) -> int:
    return int(datetime.fromisoformat(value).timestamp())


class DefectPlanter:
    """Plants defects into each patient's record as it streams past."""

    __slots__ = ("_as_of", "_clean_mrns", "_other_mrns", "_rate", "_rng", "counts")

    def __init__(self, rate: float, seed: int, as_of: int) -> None:
        """Create a planter.

        Args:
            rate: Fraction of eligible resources to damage (0 < rate <= 1).
            seed: Run seed (the planter uses its own stream derived from it).
            as_of: Epoch seconds the data is current as of.
        """
        self._rate = rate
        self._rng = random.Random(f"fhir-elt-synthetic-defects:{seed}")
        self._as_of = as_of
        # MRNs of earlier patients that may be copied (each at most once); bounded.
        self._clean_mrns: list[str] = []
        self._other_mrns: list[str] = []
        self.counts: dict[str, int] = dict.fromkeys(DEFECT_KINDS, 0)

    def _choose(self, kinds: tuple[str, ...]) -> str | None:
        for kind in kinds:
            if self.counts[kind] == 0:
                return kind
        total = min(1.0, self._rate * len(kinds))
        u = self._rng.random()
        if u < total:
            return kinds[min(len(kinds) - 1, int(u / total * len(kinds)))]
        return None

    def plant(self, resources: list[JSON]) -> list[JSON]:
        """Damage some of one patient's resources in place and describe what was done.

        Args:
            resources: The patient's record (Patient first). Nested shared dicts are never
                mutated; damaged elements are replaced.

        Returns:
            Manifest entries (kind, resource_type, id, path) for this patient.
        """
        planted: list[JSON] = []
        for r in resources:
            rtype = r["resourceType"]
            if rtype == "Observation":
                if "valueQuantity" not in r:
                    continue
                kinds = _OBSERVATION_KINDS
            elif rtype == "Encounter":
                kinds = (
                    _FINISHED_ENCOUNTER_KINDS
                    if r["status"] == "finished"
                    else _OPEN_ENCOUNTER_KINDS
                )
            elif rtype == "Patient":
                kinds = (
                    (DUPLICATE_MRN, INVALID_GENDER_CODE)
                    if self._clean_mrns or self._other_mrns
                    else (INVALID_GENDER_CODE,)
                )
            else:
                continue
            kind = self._choose(kinds)
            if rtype == "Patient":
                self._remember_mrn(r, kind)
            if kind is None:
                continue
            getattr(self, f"_plant_{kind}")(r)
            self.counts[kind] += 1
            planted.append(
                {"kind": kind, "resource_type": rtype, "id": r["id"], "path": PATHS[kind]}
            )
        return planted

    def _remember_mrn(self, patient: JSON, kind: str | None) -> None:
        if kind == DUPLICATE_MRN:
            return
        pool = self._clean_mrns if kind is None else self._other_mrns
        mrn = patient["identifier"][0]["value"]
        if len(pool) < _POOL_CAP:
            pool.append(mrn)
        else:
            pool[self._rng.randrange(_POOL_CAP)] = mrn

    # --- the six defects (each replaces, never mutates, nested elements) ---------------------
    def _plant_future_dated_encounter(self, r: JSON) -> None:
        period = r["period"]
        start = _epoch(period["start"])
        duration = _epoch(period["end"]) - start
        new_start = self._as_of + int((30 + 335 * self._rng.random()) * DAY)
        r["period"] = {"start": fhir_instant(new_start), "end": fhir_instant(new_start + duration)}

    def _plant_end_before_start(self, r: JSON) -> None:
        start = _epoch(r["period"]["start"])
        end = start - 15 * MINUTE - int(2 * DAY * self._rng.random())
        r["period"] = {"start": r["period"]["start"], "end": fhir_instant(end)}

    def _plant_missing_patient_reference(self, r: JSON) -> None:
        r["subject"] = {"reference": f"Patient/{new_uuid(self._rng)}"}

    def _plant_invalid_gender_code(self, r: JSON) -> None:
        r["gender"] = self._rng.choice(INVALID_GENDERS)

    def _plant_duplicate_mrn(self, r: JSON) -> None:
        pool = self._clean_mrns or self._other_mrns
        i = self._rng.randrange(len(pool))
        pool[i], pool[-1] = pool[-1], pool[i]
        source = pool.pop()
        identifiers = r["identifier"]
        r["identifier"] = [{**identifiers[0], "value": source}, *identifiers[1:]]

    def _plant_wrong_unit_for_loinc(self, r: JSON) -> None:
        wrong = v.WRONG_UNITS[r["code"]["coding"][0]["code"]]
        r["valueQuantity"] = {**r["valueQuantity"], "unit": wrong, "code": wrong}


class DefectManifest:
    """Streams manifest entries to a temporary file; :meth:`finish` writes ``_defects.json``."""

    def __init__(self, out: Path) -> None:
        """Open the temporary entry file in ``out``."""
        self.path = out / MANIFEST_NAME
        self._tmp = out / f"{MANIFEST_NAME}.partial"
        self._fh = self._tmp.open("wb")
        self._n = 0

    def extend(self, entries: list[JSON]) -> None:
        """Append entries."""
        for entry in entries:
            self._fh.write(b",\n" if self._n else b"\n")
            self._fh.write(orjson.dumps(entry))
            self._n += 1

    def finish(self, seed: int, as_of: int, rate: float, counts: dict[str, int]) -> Path:
        """Write the final manifest (header, then the streamed entries) and return its path."""
        self._fh.close()
        header = orjson.dumps(
            {
                "seed": seed,
                "as_of": from_epoch(as_of).isoformat(),
                "defect_rate": rate,
                "counts": counts,
            }
        )
        with self.path.open("wb") as fh, self._tmp.open("rb") as entries:
            fh.write(header[:-1] + b',"defects":[')
            while chunk := entries.read(1 << 20):
                fh.write(chunk)
            fh.write(b"\n]}\n")
        self._tmp.unlink()
        logger.info("wrote %s (%d defects)", self.path, self._n)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file after a failed run."""
        self._fh.close()
        self._tmp.unlink(missing_ok=True)
