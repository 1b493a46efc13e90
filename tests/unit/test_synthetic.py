"""Synthetic generator: public API, determinism, formats, FHIR R4B validity, memory."""

from __future__ import annotations

import importlib
import json
import tracemalloc
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

import orjson
import pytest

from loaders.synthetic import (
    RESOURCE_TYPES,
    GenerateOptions,
    GenerationSummary,
    generate,
)
from loaders.synthetic.ids import new_uuid

AS_OF = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SHARED_TYPES = ("Organization", "Location", "Practitioner")


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as fh:
        return [orjson.loads(line) for line in fh]


def references(node: Any) -> list[str]:
    """Every Reference.reference value anywhere inside ``node``."""
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str):
                found.append(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerationSummary, Path]:
    out = tmp_path_factory.mktemp("ndjson30")
    summary = generate(GenerateOptions(patients=30, seed=11, out=out, as_of=AS_OF))
    return summary, out


@pytest.fixture(scope="module")
def bundle_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerationSummary, Path]:
    out = tmp_path_factory.mktemp("bundle40")
    summary = generate(
        GenerateOptions(patients=40, seed=5, out=out, fmt="bundle", as_of=AS_OF, defect_rate=0.05)
    )
    return summary, out


# --- options ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patients": 0}, "patients"),
        ({"patients": -5}, "patients"),
        ({"defect_rate": -0.1}, "defect_rate"),
        ({"defect_rate": 1.5}, "defect_rate"),
        ({"fmt": "csv"}, "fmt"),
        ({"as_of": datetime(2026, 1, 1)}, "timezone-aware"),  # naive on purpose
    ],
)
def test_options_reject_invalid_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GenerateOptions(**kwargs)


def test_options_are_frozen_and_accept_edges(tmp_path: Path) -> None:
    opts = GenerateOptions(patients=1, defect_rate=1.0, out=tmp_path, fmt="bundle")
    assert opts.defect_rate == 1.0
    with pytest.raises(AttributeError):
        opts.patients = 2  # type: ignore[misc]


def test_new_uuid_matches_uuid_module() -> None:
    a, b = Random(3), Random(3)
    for _ in range(200):
        assert new_uuid(a) == str(uuid.UUID(int=b.getrandbits(128), version=4))


# --- summary and layout -------------------------------------------------------------------------
def test_summary_matches_files(small_run: tuple[GenerationSummary, Path]) -> None:
    summary, out = small_run
    assert [p.name for p in summary.files] == [f"{t}.ndjson" for t in RESOURCE_TYPES]
    for path in summary.files:
        rows = read_ndjson(path)
        assert len(rows) == summary.counts_by_type[path.stem]
        assert {r["resourceType"] for r in rows} <= {path.stem}
    assert summary.total_resources == sum(summary.counts_by_type.values())
    assert all(summary.counts_by_type[t] > 0 for t in RESOURCE_TYPES)
    assert summary.defects_by_kind == {}
    assert summary.defects_manifest is None
    assert not (out / "_defects.json").exists()
    assert summary.seconds > 0


def test_resources_per_patient_like_synthea(tmp_path: Path) -> None:
    summary = generate(GenerateOptions(patients=400, seed=3, out=tmp_path, as_of=AS_OF))
    per_patient = summary.total_resources / 400
    assert 35 <= per_patient <= 50, per_patient
    # shared pools: ~1 organization per 200 patients (min 3), ~1 practitioner per 20 (min 10)
    assert summary.counts_by_type["Organization"] == 3
    assert summary.counts_by_type["Practitioner"] == 20


def test_out_directory_is_created_and_stale_manifest_removed(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "dir"
    generate(GenerateOptions(patients=3, seed=1, out=out, as_of=AS_OF, defect_rate=0.5))
    assert (out / "_defects.json").exists()
    summary = generate(GenerateOptions(patients=3, seed=1, out=out, as_of=AS_OF))
    assert summary.defects_manifest is None
    assert not (out / "_defects.json").exists()


def test_as_of_defaults_to_now(tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    generate(GenerateOptions(patients=2, seed=1, out=tmp_path))
    after = datetime.now(UTC)
    stamps = [
        datetime.fromisoformat(r["meta"]["lastUpdated"])
        for t in RESOURCE_TYPES
        for r in read_ndjson(tmp_path / f"{t}.ndjson")
    ]
    assert stamps
    assert max(stamps) <= after
    assert max(stamps) >= before - timedelta(hours=6)


# --- determinism -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["ndjson", "bundle"])
def test_same_seed_gives_identical_bytes(tmp_path: Path, fmt: str) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        generate(
            GenerateOptions(
                patients=25,
                seed=99,
                out=out,
                fmt=fmt,
                as_of=AS_OF,  # type: ignore[arg-type]
                defect_rate=0.1,
            )
        )
    assert tree_bytes(a) == tree_bytes(b)


def test_different_seed_or_as_of_changes_output(tmp_path: Path) -> None:
    base = tmp_path / "base"
    generate(GenerateOptions(patients=10, seed=1, out=base, as_of=AS_OF))
    other_seed = tmp_path / "seed"
    generate(GenerateOptions(patients=10, seed=2, out=other_seed, as_of=AS_OF))
    other_day = tmp_path / "day"
    generate(GenerateOptions(patients=10, seed=1, out=other_day, as_of=AS_OF + timedelta(days=1)))
    reference = (base / "Patient.ndjson").read_bytes()
    assert (other_seed / "Patient.ndjson").read_bytes() != reference
    assert (other_day / "Patient.ndjson").read_bytes() != reference


def test_defects_do_not_change_clean_resources(tmp_path: Path) -> None:
    clean, dirty = tmp_path / "clean", tmp_path / "dirty"
    generate(GenerateOptions(patients=30, seed=8, out=clean, as_of=AS_OF))
    generate(GenerateOptions(patients=30, seed=8, out=dirty, as_of=AS_OF, defect_rate=0.1))
    manifest = json.loads((dirty / "_defects.json").read_text())
    damaged = {d["id"] for d in manifest["defects"]}
    assert damaged
    for rtype in RESOURCE_TYPES:
        a = read_ndjson(clean / f"{rtype}.ndjson")
        b = read_ndjson(dirty / f"{rtype}.ndjson")
        assert [r["id"] for r in a] == [r["id"] for r in b]
        for x, y in zip(a, b, strict=True):
            assert (x == y) != (x["id"] in damaged), (rtype, x["id"])


# --- FHIR validity ------------------------------------------------------------------------------
def _model(rtype: str) -> Any:
    return getattr(importlib.import_module(f"fhir.resources.R4B.{rtype.lower()}"), rtype)


def test_every_resource_validates_with_fhir_r4b(small_run: tuple[GenerationSummary, Path]) -> None:
    summary, _ = small_run
    validated: Counter[str] = Counter()
    for path in summary.files:
        model = _model(path.stem)
        for resource in read_ndjson(path):
            model.model_validate(resource)
            validated[path.stem] += 1
    assert set(validated) == set(RESOURCE_TYPES)


def test_bundles_validate_with_fhir_r4b(bundle_run: tuple[GenerationSummary, Path]) -> None:
    summary, _ = bundle_run
    bundle_model = _model("Bundle")
    for path in summary.files[:8]:  # the two shared bundles and six patients
        bundle = bundle_model.model_validate(orjson.loads(path.read_bytes()))
        assert bundle.entry


# --- bundle format ------------------------------------------------------------------------------
def test_bundle_layout_and_references_resolve(bundle_run: tuple[GenerationSummary, Path]) -> None:
    summary, out = bundle_run
    manifest = json.loads((out / "_defects.json").read_text())
    dangling_ok = {d["id"] for d in manifest["defects"] if d["kind"] == "missing_patient_reference"}
    shared: set[str] = set()
    for name in ("organizations.json", "practitioners.json"):
        bundle = orjson.loads((out / name).read_bytes())
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] in ("batch", "transaction")
        for entry in bundle["entry"]:
            r = entry["resource"]
            assert entry["fullUrl"] == f"urn:uuid:{r['id']}"
            shared.add(f"{r['resourceType']}/{r['id']}")
    assert {s.split("/")[0] for s in shared} == set(SHARED_TYPES)

    patient_files = [
        p for p in summary.files if p.name not in ("organizations.json", "practitioners.json")
    ]
    assert len(patient_files) == 40
    counts: Counter[str] = Counter()
    for path in patient_files:
        bundle = orjson.loads(path.read_bytes())
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "transaction"
        entries = bundle["entry"]
        assert entries[0]["resource"]["resourceType"] == "Patient"
        assert path.name == f"{entries[0]['resource']['id']}.json"
        full_urls = {e["fullUrl"] for e in entries}
        for e in entries:
            r = e["resource"]
            counts[r["resourceType"]] += 1
            assert e["fullUrl"] == f"urn:uuid:{r['id']}"
            assert e["request"] == {"method": "POST", "url": r["resourceType"]}
            for ref in references(r):
                if ref.startswith("urn:uuid:"):
                    assert ref in full_urls, (path.name, ref)
                elif r["id"] in dangling_ok and ref.startswith("Patient/"):
                    continue
                else:
                    assert ref in shared, (path.name, ref)
    for rtype in RESOURCE_TYPES:
        assert (
            counts[rtype] + (summary.counts_by_type[rtype] if rtype in SHARED_TYPES else 0)
            == summary.counts_by_type[rtype]
        )


def test_ndjson_references_resolve(small_run: tuple[GenerationSummary, Path]) -> None:
    _, out = small_run
    ids = {f"{t}/{r['id']}" for t in RESOURCE_TYPES for r in read_ndjson(out / f"{t}.ndjson")}
    checked = 0
    for rtype in RESOURCE_TYPES:
        for r in read_ndjson(out / f"{rtype}.ndjson"):
            for ref in references(r):
                assert ref in ids, (rtype, ref)
                checked += 1
    assert checked > 1000


def test_locations_belong_to_the_encounter_service_provider(
    small_run: tuple[GenerationSummary, Path],
) -> None:
    _, out = small_run
    managing = {
        f"Location/{r['id']}": r["managingOrganization"]["reference"]
        for r in read_ndjson(out / "Location.ndjson")
    }
    for enc in read_ndjson(out / "Encounter.ndjson"):
        location = enc["location"][0]["location"]["reference"]
        assert managing[location] == enc["serviceProvider"]["reference"]


# --- memory -------------------------------------------------------------------------------------
def _peak_bytes(out: Path, patients: int) -> int:
    tracemalloc.start()
    try:
        generate(GenerateOptions(patients=patients, seed=4, out=out, as_of=AS_OF, defect_rate=0.05))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_patient_count(tmp_path: Path) -> None:
    # the pool and fixed buffers are sized the same for both runs (< 200 patients)
    small = _peak_bytes(tmp_path / "small", 40)
    large = _peak_bytes(tmp_path / "large", 190)
    assert large < small * 1.5 + 512 * 1024, (small, large)
