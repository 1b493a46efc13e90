"""``fhir-elt load rest`` and ``fhir-elt backfill`` configured the dlt way (environment here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loaders.cli import main
from tests.fhir_server import FhirTestServer


@pytest.fixture
def source_env(fhir_server: FhirTestServer, monkeypatch: pytest.MonkeyPatch) -> str:
    prefix = "SOURCES__FHIR_REST__CLI_EHR__"
    monkeypatch.setenv(prefix + "BASE_URL", fhir_server.base_url)
    monkeypatch.setenv(prefix + "PAGE_SIZE", "200")
    monkeypatch.setenv(prefix + "READ_TIMEOUT", "5")
    monkeypatch.setenv(prefix + "GROUPS", '{"people": {"types": ["Patient"], "every_minutes": 60}}')
    return "cli_ehr"


def test_load_rest_then_schedule_skips_a_group_not_due(
    source_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "--source",
        source_env,
        "--warehouse",
        str(tmp_path / "w.duckdb"),
        "--landing",
        str(tmp_path / "landing"),
    ]

    assert main(["load", "rest", *args]) == 0
    first = capsys.readouterr().out
    assert "succeeded" in first and "Patient" in first and "20 resources" in first

    assert main(["load", "rest", *args, "--group", "people"]) == 0
    assert "skipped" in capsys.readouterr().out

    assert main(["backfill", *args, "--since", "1900-01-01"]) == 0
    assert "backfill" in capsys.readouterr().out


def test_a_source_without_base_url_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["load", "rest", "--source", "nowhere", "--warehouse", str(tmp_path / "w.duckdb")])

    assert code == 1
    assert "sources.fhir_rest.nowhere.base_url" in capsys.readouterr().err
