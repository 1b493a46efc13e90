"""``fhir-elt quarantine list|show|retry`` on a real load with refused lines.

A file load quarantines a Patient whose id is too long and a line of broken JSON. The list and
show commands name reason, path, file and line and never print a payload or identifier unless
``show --payload`` is asked (with a PHI warning). A retry before any fix changes nothing but
its record; after a "fix" (the id rule widened) the Patient is landed and merged as a normal
run, the broken line stays quarantined, no quarantine row is deleted, and a replay of the
landing zone includes the retried resource.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from loaders import resources
from loaders.cli import main
from loaders.load_files import load_files
from loaders.replay import ReplayOptions, replay
from loaders.settings import LoadSettings

LONG_ID = "p" * 70  # FHIR ids are 1-64 characters: refused as invalid_id
MARKER = "Quarantinedname"  # a name that must never be printed without --payload


def _patient(resource_id: str, family: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Patient",
            "id": resource_id,
            "meta": {"versionId": "1", "lastUpdated": "2026-05-01T00:00:00Z"},
            "name": [{"family": family}],
        }
    )


def _rows(settings: LoadSettings, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def _cli(
    settings: LoadSettings, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(
        [
            "quarantine",
            *args,
            "--warehouse",
            str(settings.duckdb_path),
            "--landing",
            str(settings.landing_root),
        ]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _ids(listing: str) -> dict[str, str]:
    """reason -> quarantine id, from the list table."""
    return {
        match.group(2): match.group(1)
        for match in re.finditer(r"^([0-9a-f]{12})\s+\S+\s+(\w+)", listing, re.MULTILINE)
    }


@pytest.fixture
def loaded(settings: LoadSettings, tmp_path: Path) -> LoadSettings:
    data = tmp_path / "data"
    data.mkdir()
    lines = [_patient("ok-1", "Fine"), _patient(LONG_ID, MARKER), b'{"resourceType": "Pat']
    (data / "Patient.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    settings = replace(settings, source_system="files")
    assert load_files(data, settings).exit_code == 3
    return settings


def test_list_and_show_name_where_and_why_but_never_the_payload_unless_asked(
    loaded: LoadSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(loaded, capsys, "list")
    assert code == 0, err
    ids = _ids(out)
    assert set(ids) == {"invalid_id", "invalid_json"}
    assert "Patient.ndjson" in out and "2 quarantined, 2 open" in out
    assert LONG_ID not in out and MARKER not in out
    assert set(_ids(_cli(loaded, capsys, "list", "--reason", "invalid_json")[1])) == {
        "invalid_json"
    }

    code, out, err = _cli(loaded, capsys, "show", ids["invalid_id"][:8])
    assert code == 0, err
    assert "json path:      id" in out and "reason:         invalid_id" in out
    assert "line:           2" in out and "FHIR id rules" in out
    assert LONG_ID not in out + err and MARKER not in out + err

    code, out, err = _cli(loaded, capsys, "show", ids["invalid_id"], "--payload")
    assert code == 0 and "may contain PHI" in err
    assert out.splitlines()[-1] == _patient(LONG_ID, MARKER).decode()

    # Rows recorded before landing_line existed are found by their order in the page.
    with duckdb.connect(str(loaded.duckdb_path)) as connection:
        connection.execute("update raw_fhir.quarantine set landing_line = null")
    code, out, _ = _cli(loaded, capsys, "show", ids["invalid_json"], "--payload")
    assert out.splitlines()[-1] == '{"resourceType": "Pat'

    code, _, err = _cli(loaded, capsys, "show", "000000")
    assert code == 1 and "no quarantined resource" in err


def test_retry_merges_what_parses_after_a_fix_and_keeps_every_quarantine_row(
    loaded: LoadSettings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    ids = _ids(_cli(loaded, capsys, "list")[1])
    code, out, err = _cli(loaded, capsys, "retry", "--all")
    assert code == 3
    assert f"{ids['invalid_id']}: still_refused: invalid_id (path id)" in err
    assert _rows(loaded, "select count(*) from raw_fhir.patient") == [(1,)]

    monkeypatch.setattr(resources, "_FHIR_ID", re.compile(r"[A-Za-z0-9\-.]{1,100}"))  # the fix
    code, out, err = _cli(loaded, capsys, "retry", "--all")

    assert code == 3  # the broken JSON stays quarantined
    assert f"{ids['invalid_id']}: resolved: landed in files/Patient/" in out
    assert f"{ids['invalid_json']}: still_refused: invalid_json" in err
    ((landing_file, request_id, family),) = _rows(
        loaded,
        f"select landing_file, request_id, resource->>'$.name[0].family' "
        f"from raw_fhir.patient where id = '{LONG_ID}'",
    )
    assert family == MARKER
    (retry_run,) = _rows(
        loaded,
        "select run_id from raw_fhir.load_runs where command = 'quarantine retry' "
        "and resources_merged = 1",
    )
    assert landing_file.startswith("files/Patient/") and retry_run[0] in landing_file
    assert request_id == f"{retry_run[0]}/quarantine-{ids['invalid_id']}"
    assert _rows(loaded, "select count(*) from raw_fhir.quarantine") == [(2,)]
    assert _rows(
        loaded,
        "select outcome, count(*) from raw_fhir.quarantine_retries group by 1 order by 1",
    ) == [("resolved", 1), ("still_refused", 3)]
    open_list = _cli(loaded, capsys, "list", "--open")[1]
    assert set(_ids(open_list)) == {"invalid_json"}
    code, out, err = _cli(loaded, capsys, "retry", ids["invalid_id"])
    assert code == 0 and "already resolved" in err and "nothing to retry" in out
    _, out, _ = _cli(loaded, capsys, "show", ids["invalid_id"])
    assert f"resolved ({retry_run[0]})" in out

    rebuilt = replace(loaded, duckdb_path=tmp_path / "rebuilt" / "fhir.duckdb")
    assert replay(rebuilt, ReplayOptions()).exit_code == 0
    assert _rows(rebuilt, f"select landing_file from raw_fhir.patient where id = '{LONG_ID}'") == [
        (landing_file,)
    ]
