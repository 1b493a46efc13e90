"""Synthetic generator: clinical coherence, code systems, timing and freshness of the data."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from loaders.synthetic import RESOURCE_TYPES, GenerateOptions, generate

AS_OF = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as fh:
        return [orjson.loads(line) for line in fh]


def ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


class Data:
    def __init__(self, out: Path) -> None:
        self.by_type = {t: read_ndjson(out / f"{t}.ndjson") for t in RESOURCE_TYPES}

    def __getitem__(self, rtype: str) -> list[dict[str, Any]]:
        return self.by_type[rtype]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    out = tmp_path_factory.mktemp("realism")
    generate(GenerateOptions(patients=1000, seed=42, out=out, as_of=AS_OF))
    return Data(out)


def code_of(concept: dict[str, Any]) -> tuple[str, str]:
    coding = concept["coding"][0]
    return coding["system"], coding["code"]


# --- meta ----------------------------------------------------------------------------------------
def test_last_updated_never_after_as_of_and_fresh_for_every_type(data: Data) -> None:
    for rtype in RESOURCE_TYPES:
        stamps = [ts(r["meta"]["lastUpdated"]) for r in data[rtype]]
        assert max(stamps) <= AS_OF, rtype
        fresh = [s for s in stamps if s >= AS_OF - timedelta(hours=6)]
        assert len(fresh) >= min(3, len(stamps)), rtype
        versions = Counter(r["meta"]["versionId"] for r in data[rtype])
        assert set(versions) <= {"1", "2", "3"}, rtype


def test_versions_and_lag_are_realistic(data: Data) -> None:
    versions = Counter(r["meta"]["versionId"] for r in data["Observation"])
    total = sum(versions.values())
    assert versions["1"] / total > 0.8
    assert versions["2"] > 0 and versions["3"] > 0
    lags = [
        ts(o["meta"]["lastUpdated"]) - ts(o["issued"])
        for o in data["Observation"]
        if o["meta"]["versionId"] == "1"
    ]
    assert statistics.median(lags) < timedelta(hours=3)
    assert min(lags) >= timedelta(0)


def test_patients_were_touched_recently(data: Data) -> None:
    stamps = [ts(p["meta"]["lastUpdated"]) for p in data["Patient"]]
    assert all(AS_OF - s <= timedelta(days=30) for s in stamps)
    assert statistics.median(AS_OF - s for s in stamps) < timedelta(days=10)


# --- patients ------------------------------------------------------------------------------------
def test_patient_demographics(data: Data) -> None:
    patients = data["Patient"]
    genders = Counter(p["gender"] for p in patients)
    assert set(genders) == {"male", "female", "other", "unknown"}
    assert genders["male"] > 400 and genders["female"] > 400
    mrns = [
        i["value"]
        for p in patients
        for i in p["identifier"]
        if i["system"] == "http://hospital.example.org/mrn"
    ]
    assert len(mrns) == len(set(mrns)) == len(patients)
    assert all(re.fullmatch(r"MRN-\d{8}", m) for m in mrns)
    ssns = [
        i["value"]
        for p in patients
        for i in p["identifier"]
        if i["system"] == "http://hl7.org/fhir/sid/us-ssn"
    ]
    assert len(ssns) == len(patients)
    assert all(re.fullmatch(r"999-\d{2}-\d{4}", s) for s in ssns)
    for p in patients:
        name = p["name"][0]
        assert name["use"] == "official"
        assert re.fullmatch(r"[A-Z][a-z]+\d+", name["family"])
        assert all(re.fullmatch(r"[A-Z][a-z]+\d+", g) for g in name["given"])
        assert p["address"][0]["country"] == "US"
        urls = [e["url"] for e in p["extension"]]
        assert urls == [
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
        ]
        for ext in p["extension"]:
            parts = {x["url"]: x for x in ext["extension"]}
            omb = parts["ombCategory"]["valueCoding"]
            assert omb["system"] == "urn:oid:2.16.840.1.113883.6.238"
            assert parts["text"]["valueString"]
        age = (AS_OF.date() - datetime.fromisoformat(p["birthDate"]).date()).days / 365.25
        assert 0 <= age <= 101
    deceased = sum("deceasedDateTime" in p for p in patients) / len(patients)
    assert 0.015 <= deceased <= 0.07


# --- encounters ----------------------------------------------------------------------------------
def test_encounter_timing_classes_and_places(data: Data) -> None:
    classes: Counter[str] = Counter()
    recent = 0
    for e in data["Encounter"]:
        cls = e["class"]
        assert cls["system"] == "http://terminology.hl7.org/CodeSystem/v3-ActCode"
        assert (cls["code"], cls["display"]) in {
            ("AMB", "ambulatory"),
            ("EMER", "emergency"),
            ("IMP", "inpatient encounter"),
        }
        classes[cls["code"]] += 1
        assert code_of(e["type"][0])[0] == SNOMED
        assert e["participant"][0]["individual"]["reference"].startswith("Practitioner/")
        assert e["serviceProvider"]["reference"].startswith("Organization/")
        start = ts(e["period"]["start"])
        assert start <= AS_OF
        recent += start >= AS_OF - timedelta(days=3653)
        if e["status"] == "in-progress":
            assert "end" not in e["period"]
            continue
        assert e["status"] == "finished"
        length = ts(e["period"]["end"]) - start
        if cls["code"] == "AMB":
            assert timedelta(minutes=15) <= length <= timedelta(minutes=60)
        elif cls["code"] == "EMER":
            assert timedelta(hours=1) <= length <= timedelta(hours=8)
        else:
            assert timedelta(days=1) <= length <= timedelta(days=10, hours=1)
            disposition = e["hospitalization"]["dischargeDisposition"]["coding"][0]
            assert disposition["system"] == (
                "http://terminology.hl7.org/CodeSystem/discharge-disposition"
            )
    total = sum(classes.values())
    assert classes["AMB"] / total > 0.8
    assert classes["EMER"] > 0 and classes["IMP"] > 0
    assert 0.75 < recent / total < 1.0  # mostly, not only, the last ten years


def test_some_recent_encounters_are_in_progress(data: Data) -> None:
    open_ = [e for e in data["Encounter"] if e["status"] == "in-progress"]
    assert 1 <= len(open_) <= 0.01 * len(data["Encounter"])
    assert all(AS_OF - ts(e["period"]["start"]) < timedelta(days=11) for e in open_)


def test_readmission_share(data: Data) -> None:
    stays: dict[str, list[tuple[datetime, datetime | None, str]]] = defaultdict(list)
    for e in data["Encounter"]:
        if e["class"]["code"] == "IMP":
            end = ts(e["period"]["end"]) if "end" in e["period"] else None
            code = (
                e.get("hospitalization", {})
                .get("dischargeDisposition", {})
                .get("coding", [{}])[0]
                .get("code", "")
            )
            stays[e["subject"]["reference"]].append((ts(e["period"]["start"]), end, code))
    discharges = readmitted = 0
    for visits in stays.values():
        visits.sort(key=lambda x: x[0])
        for i, (_, end, code) in enumerate(visits):
            if end is None or code == "exp":
                continue
            discharges += 1
            readmitted += any(
                timedelta(0) < s - end <= timedelta(days=30) for s, _, _ in visits[i + 1 :]
            )
    assert discharges >= 100
    assert 0.08 <= readmitted / discharges <= 0.25, (readmitted, discharges)


def test_death_is_coherent(data: Data) -> None:
    death = {
        f"Patient/{p['id']}": ts(p["deceasedDateTime"])
        for p in data["Patient"]
        if "deceasedDateTime" in p
    }
    expired = 0
    for e in data["Encounter"]:
        subject = e["subject"]["reference"]
        if subject in death:
            assert ts(e["period"]["start"]) < death[subject]
            assert ts(e["period"].get("end", e["period"]["start"])) <= death[subject]
        disposition = e.get("hospitalization", {}).get("dischargeDisposition")
        if disposition and disposition["coding"][0]["code"] == "exp":
            expired += 1
            assert death[subject] == ts(e["period"]["end"])
    assert expired >= 3
    for d in data["MedicationDispense"]:
        subject = d["subject"]["reference"]
        if subject in death:
            assert ts(d["whenHandedOver"]) <= death[subject]


# --- conditions ----------------------------------------------------------------------------------
def test_conditions(data: Data) -> None:
    codes = Counter()
    for c in data["Condition"]:
        system, code = code_of(c["code"])
        assert system == SNOMED
        codes[code] += 1
        status = c["clinicalStatus"]["coding"][0]
        assert status["system"] == "http://terminology.hl7.org/CodeSystem/condition-clinical"
        assert c["category"][0]["coding"][0]["code"] in {"encounter-diagnosis", "problem-list-item"}
        onset = ts(c["onsetDateTime"])
        assert onset <= AS_OF
        if status["code"] == "resolved":
            assert onset < ts(c["abatementDateTime"]) <= AS_OF
        else:
            assert status["code"] == "active"
            assert "abatementDateTime" not in c
    for chronic in ("44054006", "38341003", "55822004", "195967001", "162864005"):
        assert codes[chronic] > 5, chronic


# --- observations --------------------------------------------------------------------------------
UNITS = {
    "8867-4": ("vital-signs", {"/min"}),
    "39156-5": ("vital-signs", {"kg/m2"}),
    "29463-7": ("vital-signs", {"kg", "[lb_av]"}),
    "8302-2": ("vital-signs", {"cm"}),
    "4548-4": ("laboratory", {"%"}),
    "2339-0": ("laboratory", {"mg/dL", "mmol/L"}),
}


def test_observation_codes_units_and_alternative_units(data: Data) -> None:
    units: dict[str, Counter[str]] = defaultdict(Counter)
    for o in data["Observation"]:
        system, code = code_of(o["code"])
        assert system == LOINC
        assert o["status"] == "final"
        assert ts(o["effectiveDateTime"]) <= ts(o["issued"]) <= AS_OF
        category = o["category"][0]["coding"][0]
        assert category["system"] == ("http://terminology.hl7.org/CodeSystem/observation-category")
        if code == "85354-9":
            assert "valueQuantity" not in o
            components = {code_of(c["code"])[1]: c["valueQuantity"] for c in o["component"]}
            assert set(components) == {"8480-6", "8462-4"}
            assert all(q["code"] == "mm[Hg]" and q["system"] == UCUM for q in components.values())
            assert components["8480-6"]["value"] > components["8462-4"]["value"]
            continue
        expected_category, allowed = UNITS[code]
        assert category["code"] == expected_category
        vq = o["valueQuantity"]
        assert vq["system"] == UCUM and vq["code"] == vq["unit"] and vq["code"] in allowed
        units[code][vq["code"]] += 1
    for code, alt in (("29463-7", "[lb_av]"), ("2339-0", "mmol/L")):
        share = units[code][alt] / sum(units[code].values())
        assert 0.12 <= share <= 0.28, (code, share)


def test_body_measurements_are_coherent(data: Data) -> None:
    by_encounter: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for o in data["Observation"]:
        by_encounter[o["encounter"]["reference"]][code_of(o["code"])[1]] = o
    checked = 0
    for obs in by_encounter.values():
        if not {"39156-5", "29463-7", "8302-2"} <= set(obs):
            continue
        weight = obs["29463-7"]["valueQuantity"]
        kg = weight["value"] / 2.20462 if weight["code"] == "[lb_av]" else weight["value"]
        metres = obs["8302-2"]["valueQuantity"]["value"] / 100
        bmi = obs["39156-5"]["valueQuantity"]["value"]
        assert abs(kg / metres**2 - bmi) < 0.3, (kg, metres, bmi)
        assert 10 <= bmi <= 50 and 40 <= metres * 100 <= 210
        checked += 1
    assert checked > 500


def test_diabetics_have_higher_glucose_and_hba1c(data: Data) -> None:
    diabetics = {
        c["subject"]["reference"] for c in data["Condition"] if code_of(c["code"])[1] == "44054006"
    }
    values: dict[tuple[str, bool], list[float]] = defaultdict(list)
    for o in data["Observation"]:
        code = code_of(o["code"])[1]
        if code not in ("2339-0", "4548-4"):
            continue
        vq = o["valueQuantity"]
        value = vq["value"] * 18.016 if vq["code"] == "mmol/L" else vq["value"]
        values[(code, o["subject"]["reference"] in diabetics)].append(value)
    mean = {key: statistics.mean(v) for key, v in values.items()}
    assert mean[("2339-0", True)] > mean[("2339-0", False)] + 30
    assert mean[("4548-4", True)] > 6.5 > mean[("4548-4", False)]


# --- medications ---------------------------------------------------------------------------------
def test_prescriptions_and_fills(data: Data) -> None:
    requests = {f"MedicationRequest/{r['id']}": r for r in data["MedicationRequest"]}
    supplies = Counter()
    for r in requests.values():
        assert code_of(r["medicationCodeableConcept"])[0] == RXNORM
        assert r["intent"] == "order" and r["status"] in {"active", "completed"}
        dr = r["dispenseRequest"]
        assert dr["expectedSupplyDuration"]["code"] == "d"
        assert dr["expectedSupplyDuration"]["system"] == UCUM
        supplies[dr["expectedSupplyDuration"]["value"]] += 1
        assert ts(dr["validityPeriod"]["start"]) < ts(dr["validityPeriod"]["end"])
        assert r["requester"]["reference"].startswith("Practitioner/")
    assert set(supplies) == {30, 90}
    fills: Counter[str] = Counter()
    for d in data["MedicationDispense"]:
        request = requests[d["authorizingPrescription"][0]["reference"]]
        assert d["medicationCodeableConcept"] == request["medicationCodeableConcept"]
        assert d["subject"] == request["subject"]
        assert d["daysSupply"]["code"] == "d"
        handed = ts(d["whenHandedOver"])
        assert ts(request["authoredOn"]) <= handed <= AS_OF
        assert handed <= ts(request["dispenseRequest"]["validityPeriod"]["end"])
        fills[d["authorizingPrescription"][0]["reference"]] += 1
    for ref, n in fills.items():
        assert n <= requests[ref]["dispenseRequest"]["numberOfRepeatsAllowed"] + 1


def test_adherence_varies_between_patients(data: Data) -> None:
    start = AS_OF - timedelta(days=365)
    covered: dict[tuple[str, str], set[int]] = defaultdict(set)
    first_fill: dict[tuple[str, str], datetime] = {}
    for d in data["MedicationDispense"]:
        key = (d["subject"]["reference"], code_of(d["medicationCodeableConcept"])[1])
        handed = ts(d["whenHandedOver"])
        first_fill[key] = min(first_fill.get(key, handed), handed)
        day0 = (handed - start).days
        covered[key].update(range(day0, day0 + d["daysSupply"]["value"]))
    pdc = [
        len({day for day in days if 0 <= day < 365}) / 365
        for key, days in covered.items()
        if first_fill[key] <= start
    ]
    assert len(pdc) > 50
    assert sum(p >= 0.8 for p in pdc) / len(pdc) > 0.3
    assert sum(p < 0.6 for p in pdc) / len(pdc) > 0.05
    assert statistics.pstdev(pdc) > 0.1


# --- other clinical types ------------------------------------------------------------------------
def test_procedures_immunizations_allergies(data: Data) -> None:
    for p in data["Procedure"]:
        assert code_of(p["code"])[0] == SNOMED and p["status"] == "completed"
        when = p.get("performedDateTime") or p["performedPeriod"]["start"]
        assert ts(when) <= AS_OF
        if "performedPeriod" in p:
            assert ts(p["performedPeriod"]["start"]) <= ts(p["performedPeriod"]["end"]) <= AS_OF
    vaccines = Counter(code_of(i["vaccineCode"])[1] for i in data["Immunization"])
    assert all(
        code_of(i["vaccineCode"])[0] == "http://hl7.org/fhir/sid/cvx" for i in data["Immunization"]
    )
    assert {"140", "208", "113"} <= set(vaccines)
    for a in data["AllergyIntolerance"]:
        assert code_of(a["code"])[0] == SNOMED
        assert a["clinicalStatus"]["coding"][0]["system"] == (
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
        )
        assert a["criticality"] in {"low", "high", "unable-to-assess"}
        assert ts(a["recordedDate"]) <= AS_OF
