"""dlt's configuration read without dlt: the same values, from the same places, same order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dlt
import pytest

from loaders.dlt_config import config_value, global_settings_dir
from loaders.exceptions import ConfigError

CONFIG = """
[fhir_elt]
page_size = 5
source_system = "from-config"
duckdb_memory_limit = "1GB"
only_in_config = true

[fhir_elt.drift.epic]
"Patient.x" = "warn"
"""
SECRETS = """
[fhir_elt]
page_size = 7
alert_webhook_url = "https://hooks.example/x"
"""
KEYS = [
    "fhir_elt.page_size",  # secrets.toml over config.toml
    "fhir_elt.source_system",  # the environment over config.toml
    "fhir_elt.duckdb_memory_limit",
    "fhir_elt.only_in_config",
    "fhir_elt.alert_webhook_url",
    "fhir_elt.drift.epic",  # a table
    "fhir_elt.drift.epic.Patient.x",  # not a key: the dots are inside the quoted name
    "fhir_elt.drift.other",
    "fhir_elt.not_set",
    "sources.fhir_rest.none.base_url",
]
COMPARE = """
import json, sys
import dlt
from loaders.dlt_config import config_value
keys = json.loads(sys.argv[1])
print(json.dumps({k: [dlt.config.get(k), config_value(k)] for k in keys}, default=dict))
"""


def test_values_match_dlt_config_get(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    (project / ".dlt" / "config.toml").write_text(CONFIG)
    (project / ".dlt" / "secrets.toml").write_text(SECRETS)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "FHIR_ELT__SOURCE_SYSTEM": "from-env",
        "FHIR_ELT__DRIFT__OTHER": '{"Patient.y": "accept"}',
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    done = subprocess.run(
        [sys.executable, "-c", COMPARE, json.dumps(KEYS)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    values = json.loads(done.stdout)
    for key in KEYS:
        from_dlt, ours = values[key]
        assert ours == from_dlt, key
    assert values["fhir_elt.page_size"][1] == 7
    assert values["fhir_elt.source_system"][1] == "from-env"
    assert values["fhir_elt.drift.epic"][1] == {"Patient.x": "warn"}


def test_the_global_folder_is_dlts() -> None:
    assert global_settings_dir() == Path(dlt.current.run_context().global_dir)


def test_a_broken_toml_file_is_named_not_quoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text('[fhir_elt]\npage_size = "secret-ish\n')
    monkeypatch.setenv("DLT_PROJECT_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"config\.toml is not valid TOML") as raised:
        config_value("fhir_elt.page_size")
    assert "secret-ish" not in str(raised.value)


def test_an_edited_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / ".dlt" / "config.toml"
    config.parent.mkdir()
    monkeypatch.setenv("DLT_PROJECT_DIR", str(tmp_path))
    config.write_text("[fhir_elt]\npage_size = 5\n")
    assert config_value("fhir_elt.page_size") == 5
    config.write_text("[fhir_elt]\npage_size = 50\n")
    assert config_value("fhir_elt.page_size") == 50
