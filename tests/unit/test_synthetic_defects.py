"""Planted defects: the manifest matches what an independent re-read of the output finds."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from loaders.synthetic import DEFECT_KINDS, GenerateOptions, GenerationSummary, generate

AS_OF = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
GENDERS = {"male", "female", "other", "unknown"}
VALID_UNITS = {
    "8867-4": {"/min"},
    "39156-5": {"kg/m2"},
    "29463-7": {"kg", "[lb_av]"},
    "8302-2": {"cm"},
    "4548-4": {"%"},
    "2339-0": {"mg/dL", "mmol/L"},
    "8480-6": {"mm[Hg]"},
    "8462-4": {"mm[Hg]"},
}
MRN_SYSTEM = "http://hospital.example.org/mrn"


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as fh:
        return [orjson.loads(line) for line in fh]


def find_defects(out: Path, as_of: datetime) -> dict[str, set[str]]:
    """Detect the six defect kinds from the NDJSON files alone (like the dbt tests would)."""
    found: dict[str, set[str]] = defaultdict(set)
    patients = read_ndjson(out / "Patient.ndjson")
    patient_refs = {f"Patient/{p['id']}" for p in patients}
    holders: dict[str, list[str]] = defaultdict(list)
    for p in patients:
        if p["gender"] not in GENDERS:
            found["invalid_gender_code"].add(p["id"])
        for ident in p["identifier"]:
            if ident["system"] == MRN_SYSTEM:
                holders[ident["value"]].append(p["id"])
    for ids in holders.values():
        if len(ids) > 1:
            assert len(ids) == 2, ids  # each planted duplicate is exactly one shared value
            found["duplicate_mrn"].add(ids[1])  # the later patient received the copy
    for e in read_ndjson(out / "Encounter.ndjson"):
        start = datetime.fromisoformat(e["period"]["start"])
        end = datetime.fromisoformat(e["period"]["end"]) if "end" in e["period"] else None
        if start > as_of or (end is not None and end > as_of):
            found["future_dated_encounter"].add(e["id"])
        if end is not None and end < start:
            found["end_before_start"].add(e["id"])
        if e["subject"]["reference"] not in patient_refs:
            found["missing_patient_reference"].add(e["id"])
    for o in read_ndjson(out / "Observation.ndjson"):
        quantities = [o, *o.get("component", [])]
        for q in quantities:
            if "valueQuantity" not in q:
                continue
            loinc = q["code"]["coding"][0]["code"]
            vq = q["valueQuantity"]
            if vq["code"] not in VALID_UNITS[loinc] or vq["unit"] != vq["code"]:
                found["wrong_unit_for_loinc"].add(o["id"])
    return found


@pytest.fixture(scope="module")
def dirty_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerationSummary, Path]:
    out = tmp_path_factory.mktemp("dirty")
    summary = generate(
        GenerateOptions(patients=300, seed=21, out=out, as_of=AS_OF, defect_rate=0.03)
    )
    return summary, out


def test_clean_run_has_none_of_the_defects(tmp_path: Path) -> None:
    summary = generate(GenerateOptions(patients=300, seed=21, out=tmp_path, as_of=AS_OF))
    assert summary.defects_by_kind == {}
    assert find_defects(tmp_path, AS_OF) == {}


def test_manifest_matches_planted_defects(dirty_run: tuple[GenerationSummary, Path]) -> None:
    summary, out = dirty_run
    assert summary.defects_manifest == out / "_defects.json"
    manifest = json.loads(summary.defects_manifest.read_text())
    assert manifest["seed"] == 21
    assert datetime.fromisoformat(manifest["as_of"]) == AS_OF
    assert manifest["defect_rate"] == 0.03
    assert set(manifest["counts"]) == set(DEFECT_KINDS)
    assert manifest["counts"] == summary.defects_by_kind

    by_kind: dict[str, set[str]] = defaultdict(set)
    for d in manifest["defects"]:
        assert d["resource_type"] == d["path"].split(".")[0]
        by_kind[d["kind"]].add(d["id"])
    # one defect per resource, counts exact
    ids = [d["id"] for d in manifest["defects"]]
    assert len(ids) == len(set(ids))
    assert Counter(d["kind"] for d in manifest["defects"]) == {
        k: n for k, n in manifest["counts"].items() if n
    }
    assert find_defects(out, AS_OF) == by_kind
    assert {d["path"] for d in manifest["defects"]} == {
        "Encounter.period.start",
        "Patient.gender",
        "Patient.identifier",
        "Observation.valueQuantity.code",
        "Encounter.subject",
        "Encounter.period",
    }


def test_defect_counts_follow_the_rate(dirty_run: tuple[GenerationSummary, Path]) -> None:
    summary, _ = dirty_run
    counts, rate = summary.defects_by_kind, 0.03
    assert all(n >= 1 for n in counts.values()), counts
    observations = summary.counts_by_type["Observation"]  # includes BP panels: upper bound
    encounters = summary.counts_by_type["Encounter"]
    assert (
        0.5 * rate * 0.8 * observations
        <= counts["wrong_unit_for_loinc"]
        <= 1.5 * rate * observations
    )
    for kind in ("future_dated_encounter", "end_before_start", "missing_patient_reference"):
        assert 0.5 * rate * encounters <= counts[kind] <= 1.6 * rate * encounters, (kind, counts)


def test_defect_details(dirty_run: tuple[GenerationSummary, Path]) -> None:
    _, out = dirty_run
    manifest = json.loads((out / "_defects.json").read_text())
    kinds = {d["id"]: d["kind"] for d in manifest["defects"]}
    for e in read_ndjson(out / "Encounter.ndjson"):
        kind = kinds.get(e["id"])
        start = datetime.fromisoformat(e["period"]["start"])
        if kind == "future_dated_encounter":
            days = (start - AS_OF).days
            assert 30 <= days <= 366
            assert datetime.fromisoformat(e["period"]["end"]) >= start
        elif kind == "end_before_start":
            assert start <= AS_OF
        elif kind == "missing_patient_reference":
            assert e["subject"]["reference"].startswith("Patient/")
    for p in read_ndjson(out / "Patient.ndjson"):
        if kinds.get(p["id"]) == "invalid_gender_code":
            assert p["gender"] in {"M", "F", "femal", "u", "Male", "unk"}


@pytest.mark.parametrize("patients", [1, 3])
def test_every_kind_appears_once_eligible(tmp_path: Path, patients: int) -> None:
    summary = generate(
        GenerateOptions(patients=patients, seed=2, out=tmp_path, as_of=AS_OF, defect_rate=0.001)
    )
    counts = summary.defects_by_kind
    expected = set(DEFECT_KINDS) - ({"duplicate_mrn"} if patients == 1 else set())
    assert {k for k, n in counts.items() if n} == expected
    assert find_defects(tmp_path, AS_OF) == {
        d["kind"]: {
            x["id"]
            for x in json.loads((tmp_path / "_defects.json").read_text())["defects"]
            if x["kind"] == d["kind"]
        }
        for d in json.loads((tmp_path / "_defects.json").read_text())["defects"]
    }


def test_full_defect_rate_keeps_one_defect_per_resource(tmp_path: Path) -> None:
    summary = generate(
        GenerateOptions(patients=20, seed=6, out=tmp_path, as_of=AS_OF, defect_rate=1.0)
    )
    manifest = json.loads((tmp_path / "_defects.json").read_text())
    ids = [d["id"] for d in manifest["defects"]]
    assert len(ids) == len(set(ids))
    assert (
        summary.defects_by_kind["invalid_gender_code"] + summary.defects_by_kind["duplicate_mrn"]
        == 20
    )
    assert sum(summary.defects_by_kind.values()) == len(ids)
