"""The `fhir-elt` command line as a user meets it: exit codes and what it prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from loaders.cli import main
from tests.fhir_samples import patient, write_ndjson


def _load_args(tmp_path: Path, source: Path) -> list[str]:
    return [
        "load",
        "files",
        str(source),
        "--source-system",
        "cli",
        "--warehouse",
        str(tmp_path / "w" / "fhir.duckdb"),
        "--landing",
        str(tmp_path / "landing"),
    ]


def test_generate_then_load_then_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    assert main(["generate", "--patients", "5", "--seed", "3", "--out", str(out)]) == 0
    assert "resources for 5 patients" in capsys.readouterr().out
    assert main(_load_args(tmp_path, out)) == 0
    printed = capsys.readouterr().out
    assert "0 quarantined" in printed and "Patient" in printed
    assert (
        main(
            [
                "summary",
                "--warehouse",
                str(tmp_path / "w" / "fhir.duckdb"),
                "--target-dir",
                str(tmp_path / "no-target"),
            ]
        )
        == 0
    )
    summary = capsys.readouterr().out
    resources = summary.split("raw resources")[1].split("marts")[0]
    listed = {
        line.split()[0]: int(line.split()[1].replace(",", ""))
        for line in resources.splitlines()[1:]
        if line.strip()
    }
    assert listed["patient"] == 5
    # operational tables are not resources
    assert not {"load_runs", "landing_manifest", "quarantine", "loaded_files"} & set(listed)


def test_quarantine_exits_3_with_one_line_per_reason_and_no_payload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_ndjson(
        tmp_path / "bad.ndjson",
        [
            patient("ok"),
            b'{"resourceType":"Patient","name":[{"family":"Canary-Surname"}]}',
            b'{"resourceType":"Patient","name":[{"family":"Canary-Surname"}]}',
            b'{"resourceType":"Patient","id":"pid-canary","meta":{"lastUpdated":"1957-03-14"}}',
        ],
    )
    assert main(_load_args(tmp_path, source)) == 3
    captured = capsys.readouterr()
    reasons = [line for line in captured.err.splitlines() if "quarantined:" in line]
    assert reasons == [
        f"2 quarantined: missing_id (first at {source} line 2, path id)",
        f"1 quarantined: invalid_last_updated (first at {source} line 4, path meta.lastUpdated)",
    ]
    everything = captured.out + captured.err
    for secret in ("Canary-Surname", "pid-canary", "1957-03-14"):
        assert secret not in everything


def test_errors_exit_1_with_a_message_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_load_args(tmp_path, tmp_path / "nowhere")) == 1
    assert "input path does not exist" in capsys.readouterr().err
    source = write_ndjson(tmp_path / "p.ndjson", [patient("p1")])
    bad_source = [*_load_args(tmp_path, source)]
    bad_source[bad_source.index("cli")] = "Not A Name"
    assert main(bad_source) == 1
    assert "source system names" in capsys.readouterr().err


def test_invalid_generate_options_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["generate", "--patients", "0", "--out", str(tmp_path)]) == 2
    assert "patients" in capsys.readouterr().err
