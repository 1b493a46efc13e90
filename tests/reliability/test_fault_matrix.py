"""The fault matrix under pytest: every scenario of every available fault module, and the report.

Each scenario runs against the local test server and a fresh warehouse under ``tmp_path`` and
must end with nothing lost, nothing duplicated and ``ok`` (see ``scenario_support.verdict``).
``faults_crash`` and ``faults_link`` come from another part of the suite: collected only when
they import, and skipped while ``test_crash_and_link.py`` runs them already.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.fhir_server import FhirTestServer, Scenario
from tests.reliability import faults_bulk, faults_rest, report
from tests.reliability.__main__ import main, optional_module
from tests.reliability.matrix import FaultOutcome
from tests.reliability.matrix import Scenario as FaultScenario

OWN_TESTS = Path(__file__).with_name("test_crash_and_link.py")


def _scenarios() -> list[object]:
    params = []
    for module in (faults_rest, faults_bulk):
        params += [
            pytest.param(s, id=f"{module.__name__.rsplit('.', 1)[-1]}-{s.__name__}")
            for s in module.SCENARIOS
        ]
    for name in ("faults_crash", "faults_link"):
        try:  # as pytest.importorskip: skipped when it (or what it imports) is missing
            module = optional_module(name)
            reason = f"{name} not available"
        except ImportError as error:
            module, reason = None, f"{name} cannot be imported ({type(error).__name__})"
        if module is None:
            skip = pytest.mark.skip(reason=reason)
            params.append(pytest.param(None, id=f"{name}-not-available", marks=skip))
            continue
        # Their own test module runs them already (with their skips): listed, not run twice.
        marks = [pytest.mark.skip(reason=f"run by {OWN_TESTS.name}")] if OWN_TESTS.exists() else []
        params += [
            pytest.param(s, id=f"{name}-{s.__name__}", marks=marks) for s in module.SCENARIOS
        ]
    return params


@pytest.mark.parametrize("scenario", _scenarios())
def test_scenario_loses_and_duplicates_nothing(scenario: FaultScenario, tmp_path: Path) -> None:
    outcome = scenario(tmp_path)
    if outcome.outcome.startswith("skipped:"):  # e.g. a scenario that needs root
        pytest.skip(outcome.outcome)

    assert isinstance(outcome, FaultOutcome)
    assert outcome.expected > 0, outcome
    assert outcome.lost == 0, outcome
    assert outcome.duplicated == 0, outcome
    assert outcome.ok, outcome


def test_the_fault_table_is_markdown_with_every_column() -> None:
    rows = [
        FaultOutcome("429 storm", 1, 923, 0, 0, "exit 0: 43 x 429 sent, 43 retries", True),
        FaultOutcome("job | lost", 2, 1200, 3, 1, "exit 1 (RequestRejected); then exit 0", False),
    ]

    lines = report.fault_table(rows).splitlines()

    assert lines[0] == "| scenario | runs | expected | lost | duplicated | outcome | ok |"
    assert lines[1] == "|---|---:|---:|---:|---:|---|---|"
    assert lines[2] == "| 429 storm | 1 | 923 | 0 | 0 | exit 0: 43 x 429 sent, 43 retries | yes |"
    assert lines[3] == (
        "| job \\| lost | 2 | 1,200 | 3 | 1 | exit 1 (RequestRejected); then exit 0 | NO |"
    )


def test_figures_tables_take_their_columns_from_the_rows_and_count_crashes_and_hits() -> None:
    from dataclasses import dataclass

    @dataclass
    class Row:
        place: str
        scanned: int
        canary_hits: int
        secret_hits: int

    @dataclass
    class Figures:
        rows: list[Row]
        totals: Row

    figures = Figures([Row("logs", 10, 0, 1), Row("tables", 5, 2, 0)], Row("all", 15, 2, 1))

    table = report.figures_table(figures).splitlines()

    assert table[0] == "| place | scanned | canary_hits | secret_hits |"
    assert table[-1] == "| **all** | **15** | **2** | **1** |"
    assert report.phi_hits(figures) == 3
    assert report.crashes(figures) == 0
    assert report.figures_table(Figures([], Row("all", 0, 0, 0))) == "(no rows)"


def test_a_row_is_not_ok_when_the_warehouse_lacks_the_truth(tmp_path: Path) -> None:
    import duckdb

    from tests.reliability.scenario_support import RunResult, verdict, work_settings

    settings = work_settings(tmp_path)
    settings.duckdb_path.parent.mkdir(parents=True)
    duckdb.connect(str(settings.duckdb_path)).close()
    truth = {("Patient", "p1"): ("1", "2026-01-01T00:00:00Z")}

    outcome = verdict("empty", [RunResult(0)], truth, settings, "ehr", "nothing loaded")
    unclear = verdict(
        "unclear", [RunResult(1, ("X",), False), RunResult(0)], {}, settings, "ehr", ""
    )

    assert (outcome.expected, outcome.lost, outcome.ok) == (1, 1, False)
    assert not unclear.ok and "without a clear message" in unclear.outcome


def test_the_runner_reports_raising_and_failing_scenarios_and_missing_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys
    import types

    def fine(work_dir: Path) -> FaultOutcome:
        assert work_dir.is_dir() and not any(work_dir.iterdir())
        return FaultOutcome("fine", 1, 5, 0, 0, "exit 0", True)

    def broken(work_dir: Path) -> FaultOutcome:
        raise ValueError("a payload that must not be printed")

    fake = types.ModuleType("tests.reliability.fake_faults")
    fake.SCENARIOS = [fine, broken]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setattr(
        "tests.reliability.__main__.FAULT_MODULES", ("fake_faults", "no_such_faults")
    )
    results = tmp_path / "results.json"

    code = main(["--only", "faults", "--results", str(results)])

    out = capsys.readouterr()
    assert code == 1
    assert "| fine | 1 | 5 | 0 | 0 | exit 0 | yes |" in out.out
    assert "| broken | 0 | 0 | 0 | 0 | scenario raised ValueError | NO |" in out.out
    assert "no_such_faults: not available" in out.out
    assert "payload" not in out.out + out.err
    saved = json.loads(results.read_text())
    assert saved["ok"] is False
    assert [row["scenario"] for row in saved["faults"]["rows"]] == ["fine", "broken"]


def _next(bundle: dict) -> str:
    return next(link["url"] for link in bundle["link"] if link["relation"] == "next")


def test_repeat_page_serves_the_previous_page_again(synthetic_resources: list) -> None:
    with (
        FhirTestServer(synthetic_resources, Scenario(repeat_page=("Encounter", 2))) as server,
        httpx.Client(timeout=5) as client,
    ):
        first = client.get(f"{server.base_url}/Encounter", params={"_count": 10}).json()
        second = client.get(_next(first)).json()
        third = client.get(_next(second)).json()

    def ids(bundle: dict) -> list[str]:
        return [entry["resource"]["id"] for entry in bundle["entry"]]

    assert ids(second) == ids(first)
    assert "_offset=20" in _next(second)
    assert not set(ids(third)) & set(ids(first))
    assert server.stats.repeated_pages == 1


def test_the_runner_fails_on_a_hostile_input_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys
    import types
    from dataclasses import dataclass
    from typing import NamedTuple

    class Row(NamedTuple):
        case: str
        tried: int
        crashes: int

    @dataclass
    class Figures:
        rows: list[Row]

    hostile = types.ModuleType("tests.reliability.hostile_report")
    hostile.run = lambda: Figures([Row("truncated", 3, 0), Row("fuzz", 50, 1)])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, hostile.__name__, hostile)

    code = main(["--only", "hostile", "--results", str(tmp_path / "r.json")])
    out = capsys.readouterr().out

    assert code == 1
    assert "| fuzz | 50 | 1 |" in out and "FAILED: hostile inputs: 1 crash(es)" in out
