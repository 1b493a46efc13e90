"""The hostile-input corpus (``tests/hostile``) through the real entry points, case by case.

Each case is loaded into a copy of a warehouse that already holds three Patients, then judged
by :func:`tests.hostile.run.run_case`: the error class or quarantine rows the case expects,
messages naming the file and never a planted payload value, nothing of a failed run merged,
the earlier rows unchanged. A few cases also go through ``fhir-elt load files`` in a
subprocess (exit code, no traceback), and hostile content comes from the FHIR test server.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import orjson
import pytest

from tests.hostile.cases import FILES, HostileCase, all_cases
from tests.hostile.rest_cases import drift_and_odd_content
from tests.hostile.run import ACCEPTED, CLEAR_ERROR, prepare_template, run_case, settings_for

CASES = all_cases()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse holding the baseline Patients, copied for each case."""
    return prepare_template(tmp_path_factory.mktemp("hostile"))


def _verdict(case: HostileCase) -> str:
    expected = case.expected
    return CLEAR_ERROR if expected.error or expected.refused else ACCEPTED


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_file_is_refused_clearly_or_loaded_whole(
    case: HostileCase, template: Path, tmp_path: Path
) -> None:
    result = run_case(case, tmp_path / "work", template)

    assert result.problems == []
    assert result.verdict == _verdict(case)


CLI_CASES = [case for case in CASES if case.cli]


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.name for case in CLI_CASES])
def test_hostile_file_through_the_command_line(
    case: HostileCase, template: Path, tmp_path: Path
) -> None:
    result = run_case(case, tmp_path / "work", template, cli=True)

    assert result.problems == []
    assert result.detail == f"exit {1 if case.expected.error else 3}"


def test_duplicate_ids_resolve_the_same_in_either_order(template: Path, tmp_path: Path) -> None:
    """Same id, same version and timestamp, different content: one winner, whatever the order."""
    from loaders.load_files import load_files

    lines = (FILES / "duplicate_ids.ndjson").read_bytes().splitlines()
    winners = []
    for name, ordered in (("forward", lines), ("reversed", lines[::-1])):
        work = tmp_path / name
        shutil.copytree(template, work)
        path = work / "in" / "duplicates.ndjson"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\n".join(ordered) + b"\n")
        settings = settings_for(work)
        load_files(path, settings)
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
            rows = connection.execute(
                "select id, version_id, resource::varchar from raw_fhir.patient "
                "where id like 'dup-%' order by id"
            ).fetchall()
        winners.append([(rid, ver, orjson.loads(text)["gender"]) for rid, ver, text in rows])

    assert winners[0] == winners[1]
    assert [row[:2] for row in winners[0]] == [("dup-1", "2"), ("dup-2", "1")]


def test_hostile_content_from_a_fhir_server(fhir_server_factory, tmp_path: Path) -> None:
    result = drift_and_odd_content(fhir_server_factory, tmp_path)

    assert result.problems == []
    assert result.verdict == CLEAR_ERROR


def test_a_version_from_before_year_1000_never_replaces_a_newer_one(
    template: Path, tmp_path: Path
) -> None:
    """Regression: the sort key wrote year 999 as ``999-``, which sorted after ``2026-``."""
    from loaders.load_files import load_files

    shutil.copytree(template, tmp_path / "work")
    settings = settings_for(tmp_path / "work")
    for name, version, updated in (
        ("new", "1", "2026-01-01T00:00:00Z"),
        ("old", "2", "0999-01-01T00:00:00Z"),
    ):
        path = tmp_path / "in" / f"{name}.ndjson"
        path.parent.mkdir(parents=True, exist_ok=True)
        resource = {
            "resourceType": "Patient",
            "id": "p-999",
            "meta": {"versionId": version, "lastUpdated": updated},
        }
        path.write_bytes(orjson.dumps(resource) + b"\n")
        load_files(path, settings)

    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        rows = connection.execute(
            "select version_id from raw_fhir.patient where id = 'p-999'"
        ).fetchall()
    assert rows == [("1",)]
