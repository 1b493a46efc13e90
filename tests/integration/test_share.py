"""``fhir-elt share``: the analytic schemas of a DuckDB warehouse in a new file, without PHI.

A small synthetic dataset is generated with one planted canary patient (a family name, given
name and MRN found nowhere else), loaded, and built with ``dbt build`` (DuckDB, child process)
once for the module. Then:

* ``fhir-elt share --include`` every shareable schema (marts, canonical, snapshots, alerts,
  operations, terminology) writes a new file; it holds exactly those schemas, every relation
  of each (views as tables) with the warehouse's row count, and no raw, staging, restricted or
  test-failure schema; without ``--include`` it holds the marts alone;
* the canary appears in the warehouse (restricted.patient_identities, raw_fhir.patient) and
  nowhere in the shared file: every text value of every table is scanned, by the same scan
  that finds it in the warehouse;
* asking for a PHI schema (restricted, raw_fhir, staging, dq_failures) or an unknown one is
  refused with a clear error and writes nothing; so is a table with a column whose name is PHI
  (fixed list, or marked contains_phi in the dbt manifest), and an existing output file;
* on DuckDB the grants are off: the restricted model has no grants config and the on-run-end
  hook (macros/phi_schema_grants.sql) ran as a no-op.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from loaders.cli import main
from loaders.exceptions import ConfigError
from loaders.load_files import load_files
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from loaders.warehouse.share import (
    PHI_SCHEMAS,
    SHAREABLE_SCHEMAS,
    SharePhiError,
    share_warehouse,
)
from tests.integration.dbt_support import AS_OF, read_manifest, run_dbt_subprocess

PATIENTS = 20
CANARY_FAMILY = "Zzqcanaryfamily"
CANARY_GIVEN = "Zzqcanarygiven"
CANARY_MRN = "MRN-ZZQCANARY-0001"
CANARY_NEEDLES = ("zzqcanary",)  # lower case; in every canary value
MRN_SYSTEM = "http://hospital.example.org/mrn"


def _plant_canary(data: Path) -> None:
    """Give the first generated patient the canary's name and MRN."""
    path = data / "Patient.ndjson"
    lines = path.read_text().splitlines()
    patient = json.loads(lines[0])
    patient["name"][0]["family"] = CANARY_FAMILY
    patient["name"][0]["given"] = [CANARY_GIVEN]
    mrn = [i for i in patient["identifier"] if i.get("system") == MRN_SYSTEM]
    assert mrn, "the generator's patients carry an MRN"
    mrn[0]["value"] = CANARY_MRN
    lines[0] = json.dumps(patient)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small warehouse with a canary patient, built by ``dbt build`` (DuckDB)."""
    base = tmp_path_factory.mktemp("share")
    data = base / "data"
    generate(GenerateOptions(patients=PATIENTS, seed=11, out=data, fmt="ndjson"))
    _plant_canary(data)
    settings = LoadSettings(
        duckdb_path=base / "warehouse" / "fhir.duckdb",
        landing_root=base / "landing",
        source_system="share",
    )
    assert load_files(data, settings).exit_code == 0
    target = base / "target"
    returncode, output, results = run_dbt_subprocess(
        ["build", "--vars", json.dumps({"as_of": AS_OF})],
        target,
        {"FHIR_ELT_DUCKDB_PATH": str(settings.duckdb_path), "FHIR_ELT_HASH_KEY": "share-key"},
    )
    assert returncode == 0, output[-4000:]
    return {
        "base": base,
        "warehouse": settings.duckdb_path,
        "target": target,
        "results": results,
    }


@pytest.fixture(scope="module")
def shared(built: dict[str, Any]) -> Path:
    """The file ``fhir-elt share --include <every shareable schema>`` wrote."""
    out = built["base"] / "shared" / "analytics.duckdb"
    code = main(
        [
            "share",
            "--out",
            str(out),
            "--warehouse",
            str(built["warehouse"]),
            "--include",
            *SHAREABLE_SCHEMAS,
            "--manifest",
            str(built["target"] / "manifest.json"),
        ]
    )
    assert code == 0
    return out


def _tables(path: Path) -> dict[str, int]:
    """Row count of every table and view, by ``schema.name``."""
    with duckdb.connect(str(path), read_only=True) as connection:
        relations = connection.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = current_database()"
        ).fetchall()
        return {
            f"{schema}.{name}": connection.execute(
                f'select count(*) from "{schema}"."{name}"'
            ).fetchone()[0]
            for schema, name in relations
        }


def _canary_hits(path: Path) -> list[str]:
    """``schema.table.column`` of every text value holding a canary needle (JSON included)."""
    hits: list[str] = []
    with duckdb.connect(str(path), read_only=True) as connection:
        columns = connection.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_catalog = current_database() "
            "and (data_type in ('VARCHAR', 'JSON') or data_type like '%[]' "
            "or data_type like 'STRUCT%' or data_type like 'MAP%')"
        ).fetchall()
        for schema, table, column in columns:
            condition = " or ".join(
                f"""lower(cast("{column}" as varchar)) like '%{needle}%'"""
                for needle in CANARY_NEEDLES
            )
            count = connection.execute(
                f'select count(*) from "{schema}"."{table}" where {condition}'
            ).fetchone()[0]
            if count:
                hits.append(f"{schema}.{table}.{column}")
    return hits


def test_shared_file_holds_the_analytic_schemas_with_the_same_rows(
    built: dict[str, Any], shared: Path
) -> None:
    source = _tables(built["warehouse"])
    copied = _tables(shared)
    expected = {
        name: rows for name, rows in source.items() if name.split(".")[0] in SHAREABLE_SCHEMAS
    }
    assert len([n for n in expected if n.startswith("marts.")]) >= 10, sorted(expected)
    assert copied == expected
    assert sum(copied.values()) > 0
    assert copied["canonical.patients"] == PATIENTS
    assert copied["marts.encounter_volume_daily"] > 0


def test_default_share_is_the_marts(built: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ambiguous"):
        share_warehouse(built["warehouse"], tmp_path / "marts.duckdb")
    out = tmp_path / "analytics.duckdb"
    report = share_warehouse(built["warehouse"], out)
    source = _tables(built["warehouse"])
    marts = {name: rows for name, rows in source.items() if name.startswith("marts.")}
    assert report.schemas == ("marts",)
    assert report.rows_by_table == marts
    assert _tables(out) == marts


def test_shared_file_has_no_phi_schema(shared: Path) -> None:
    with duckdb.connect(str(shared), read_only=True) as connection:
        schemas = {
            row[0]
            for row in connection.execute(
                "select schema_name from information_schema.schemata "
                "where catalog_name = current_database()"
            ).fetchall()
        }
    assert schemas - {"main"} == set(SHAREABLE_SCHEMAS)
    assert not schemas & set(PHI_SCHEMAS)


def test_canary_is_in_the_warehouse_and_not_in_the_shared_file(
    built: dict[str, Any], shared: Path
) -> None:
    in_warehouse = _canary_hits(built["warehouse"])
    # the planted values did reach the warehouse, so the scan below can find them
    assert "restricted.patient_identities.family_name" in in_warehouse
    assert "restricted.patient_identities.mrn" in in_warehouse
    assert "raw_fhir.patient.resource" in in_warehouse
    assert not [hit for hit in in_warehouse if hit.split(".")[0] in SHAREABLE_SCHEMAS]
    assert _canary_hits(shared) == []
    assert b"zzqcanary" not in shared.read_bytes().lower()


@pytest.mark.parametrize("schema", [*PHI_SCHEMAS, "RESTRICTED", "main", "nonexistent"])
def test_phi_or_unknown_schemas_are_refused(
    built: dict[str, Any], tmp_path: Path, schema: str
) -> None:
    out = tmp_path / "refused.duckdb"
    with pytest.raises(SharePhiError) as refused:
        share_warehouse(built["warehouse"], out, schemas=["marts", schema])
    message = str(refused.value)
    assert schema.lower() in message
    assert ("holds PHI" in message) == (schema.lower() in PHI_SCHEMAS)
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_cli_refuses_restricted_with_exit_code_1(
    built: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "refused.duckdb"
    code = main(
        [
            "share",
            "--out",
            str(out),
            "--warehouse",
            str(built["warehouse"]),
            "--include",
            "restricted",
        ]
    )
    assert code == 1
    assert "schema restricted holds PHI" in capsys.readouterr().err
    assert not out.exists()


def _warehouse_with(path: Path, columns: str) -> Path:
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema marts")
        connection.execute(f"create table marts.extract as select {columns}")
    return path


def test_a_phi_column_in_a_shared_schema_is_refused(tmp_path: Path) -> None:
    warehouse = _warehouse_with(tmp_path / "w.duckdb", "1 as visit_count, 'x' as MRN")
    out = tmp_path / "out.duckdb"
    with pytest.raises(SharePhiError, match=r"marts\.extract\.MRN"):
        share_warehouse(warehouse, out)
    assert not out.exists()
    assert not out.with_name(out.name + ".sharing").exists()


def test_a_column_marked_contains_phi_in_the_manifest_is_refused(tmp_path: Path) -> None:
    warehouse = _warehouse_with(tmp_path / "w.duckdb", "1 as visit_count, 'x' as nickname")
    manifest = tmp_path / "manifest.json"
    column = {"name": "nickname", "meta": {}, "config": {"meta": {"contains_phi": True}}}
    manifest.write_text(json.dumps({"nodes": {"model.x.y": {"columns": {"nickname": column}}}}))
    out = tmp_path / "out.duckdb"
    # without the manifest the column is not known to be PHI ...
    share_warehouse(warehouse, out)
    assert _tables(out) == {"marts.extract": 1}
    # ... with it, the share is refused
    with pytest.raises(SharePhiError, match=r"marts\.extract\.nickname"):
        share_warehouse(warehouse, tmp_path / "out2.duckdb", manifest_path=manifest)
    assert not (tmp_path / "out2.duckdb").exists()


def test_an_existing_output_file_is_never_overwritten(built: dict[str, Any], shared: Path) -> None:
    before = shared.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        share_warehouse(built["warehouse"], shared)
    assert shared.read_bytes() == before


def test_duckdb_builds_grant_nothing(built: dict[str, Any]) -> None:
    manifest = read_manifest(built["target"])
    assert manifest["nodes"]["model.fhir_elt.patient_identities"]["config"]["grants"] == {}
    hooks = {
        result["unique_id"]: result["status"]
        for result in built["results"]
        if result["unique_id"].startswith("operation.")
    }
    assert hooks == {"operation.fhir_elt.fhir_elt-on-run-end-0": "success"}
