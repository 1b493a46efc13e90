"""``fhir-elt doctor`` against the local FHIR server: a good source, and each broken setting."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from loaders.cli import main
from tests.fhir_server import RegisteredClient, Scenario, ServerAuth, jwk_set, make_rsa_key

SOURCE = "doc"
PREFIX = "SOURCES__FHIR_REST__DOC__"
CLIENT = "fhir-elt-doctor"
KEY = make_rsa_key("k1")
OTHER_KEY = make_rsa_key("k1")  # same kid, not the registered key


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch):
    """Set the source's dlt settings in the environment (as CI does)."""

    def apply(server, *, key=KEY, base_url: str | None = None) -> None:
        settings = {
            "BASE_URL": base_url or server.base_url,
            "AUTH": "smart_backend",
            "TOKEN_URL": server.token_url,
            "CLIENT_ID": CLIENT,
            "KID": "k1",
            "READ_TIMEOUT": "5",
            "GROUPS": '{"core": {"types": ["Patient", "Observation"], "every_minutes": 60}}',
        }
        for name, value in settings.items():
            monkeypatch.setenv(PREFIX + name, value)
        if key is None:
            monkeypatch.delenv(PREFIX + "CREDENTIALS__PRIVATE_KEY", raising=False)
        else:
            monkeypatch.setenv(PREFIX + "CREDENTIALS__PRIVATE_KEY", key.private_pem)

    return apply


def _server(fhir_server_factory, **scenario):
    auth = ServerAuth(required=True, clients={CLIENT: RegisteredClient(jwks=jwk_set(KEY))})
    return fhir_server_factory(auth=auth, scenario=Scenario(**scenario))


def _doctor(tmp_path: Path, capsys, warehouse: Path | None = None) -> tuple[int, str]:
    code = main(
        [
            "doctor",
            "--source",
            SOURCE,
            "--warehouse",
            str(warehouse or tmp_path / "w" / "fhir.duckdb"),
            "--landing",
            str(tmp_path / "landing"),
        ]
    )
    out = capsys.readouterr().out
    assert "BEGIN PRIVATE KEY" not in out and KEY.private_pem[60:120] not in out
    return code, out


def _line(out: str, check: str) -> str:
    return next(line for line in out.splitlines() if f"  {check}  " in line)


def test_a_good_source_is_ready(fhir_server_factory, configure, tmp_path, capsys) -> None:
    server = _server(fhir_server_factory)
    configure(server)

    code, out = _doctor(tmp_path, capsys)

    assert code == 0, out
    for check in (
        "secrets",
        "configuration",
        "connectivity",
        "auth",
        "search support",
        "warehouse",
        "landing zone",
    ):
        assert _line(out, check).lstrip().startswith("ok"), out
    assert "private_key set (not shown)" in out
    assert out.rstrip().endswith("ready to load")
    assert server.stats.tokens_issued == 1


def test_missing_secret_names_the_variable(fhir_server_factory, configure, tmp_path, capsys):
    configure(_server(fhir_server_factory), key=None)

    code, out = _doctor(tmp_path, capsys)

    assert code == 1
    assert _line(out, "secrets").lstrip().startswith("FAIL")
    assert "sources.fhir_rest.doc.credentials.private_key" in out
    assert "SOURCES__FHIR_REST__DOC__CREDENTIALS__PRIVATE_KEY" in out  # the fix
    assert _line(out, "configuration").lstrip().startswith("skip")


def test_bad_base_url(fhir_server_factory, configure, tmp_path, capsys) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure(_server(fhir_server_factory), base_url=f"http://127.0.0.1:{port}/fhir")

    code, out = _doctor(tmp_path, capsys)

    assert code == 1
    assert _line(out, "connectivity").lstrip().startswith("FAIL")
    assert "fix (connectivity): check sources.fhir_rest.doc.base_url" in out
    assert _line(out, "auth").lstrip().startswith("skip")


def test_wrong_key_is_an_auth_failure_with_the_fix(
    fhir_server_factory, configure, tmp_path, capsys
) -> None:
    configure(_server(fhir_server_factory), key=OTHER_KEY)

    code, out = _doctor(tmp_path, capsys)

    assert code == 1
    assert _line(out, "auth").lstrip().startswith("FAIL")
    assert "registered with the EHR (its JWKS)" in out
    assert OTHER_KEY.private_pem[60:120] not in out


def test_server_without_last_updated_or_sort(
    fhir_server_factory, configure, tmp_path, capsys
) -> None:
    server = _server(
        fhir_server_factory, last_updated_unsupported={"Observation"}, supports_sort=False
    )
    configure(server)

    code, out = _doctor(tmp_path, capsys)

    assert code == 1
    failure = next(line for line in out.splitlines() if line.lstrip().startswith("FAIL"))
    assert "search support" in failure and "Observation: no _lastUpdated search" in failure
    assert "sources.fhir_rest.doc.types.Observation.strategy = clinical_date" in out
    warning = next(line for line in out.splitlines() if line.lstrip().startswith("warn"))
    assert "Patient: no _sort" in warning


def test_unwritable_warehouse(fhir_server_factory, configure, tmp_path, capsys) -> None:
    configure(_server(fhir_server_factory))
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the warehouse directory should be")

    code, out = _doctor(tmp_path, capsys, warehouse=blocker / "fhir.duckdb")

    assert code == 1
    assert _line(out, "warehouse").lstrip().startswith("FAIL")
    assert "set FHIR_ELT_DUCKDB_PATH (or --warehouse)" in out
    assert _line(out, "auth").lstrip().startswith("ok")
