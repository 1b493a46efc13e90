"""Run-record provenance: the credential's client id (never a secret), types, code version."""

from __future__ import annotations

import subprocess
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loaders import code_version
from loaders.rest.config import AuthConfig, AuthKind
from loaders.warehouse.operational import RunRecord

SECRET = "s3cr3t-never-stored"


def test_credential_client_id_is_the_client_never_the_secret() -> None:
    client = AuthConfig(
        AuthKind.CLIENT_CREDENTIALS, "https://t.example/token", "app-1", client_secret=SECRET
    )
    smart = AuthConfig(
        AuthKind.SMART_BACKEND, "https://t.example/token", "app-2", private_key=SECRET
    )
    static = AuthConfig(AuthKind.STATIC, client_id="ignored", token=SECRET)
    assert client.credential_client_id == "app-1"
    assert smart.credential_client_id == "app-2"
    assert static.credential_client_id is None
    assert AuthConfig().credential_client_id is None

    run = RunRecord("r1", "ehr", "load rest", datetime.now(UTC), credential_client_id="app-1")
    run.add_resource_types(["Patient", "Encounter", "_deleted", "Patient"])
    row = asdict(run)
    assert row["resource_types"] == "Encounter,Patient"
    assert SECRET not in repr(row)


def test_code_version_and_commit() -> None:
    run = RunRecord("r1", "files", "load files", datetime.now(UTC))
    assert run.code_version == code_version.package_version()
    assert run.code_version  # the package is installed in the test environment
    repository = Path(code_version.__file__).resolve().parent.parent
    if (repository / ".git").exists():
        head = subprocess.run(
            ["git", "-C", str(repository), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert run.code_commit == head


def test_commit_is_none_outside_a_checkout_and_read_from_github_sha(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert code_version.commit_of_checkout(tmp_path) is None
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    assert code_version._commit_from_env() == "a" * 40
    monkeypatch.setenv("GITHUB_SHA", "not-a-commit; rm -rf /")
    assert code_version._commit_from_env() is None
