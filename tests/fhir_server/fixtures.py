"""Pytest fixtures for the FHIR test server.

Register in ``tests/conftest.py`` with ``pytest_plugins = ["tests.fhir_server.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loaders.synthetic import GenerateOptions, generate
from tests.fhir_server.auth import ServerAuth
from tests.fhir_server.ndjson import load_ndjson_dir
from tests.fhir_server.scenario import Scenario
from tests.fhir_server.server import FhirTestServer
from tests.fhir_server.store import Resource

SYNTHETIC_AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
SYNTHETIC_PATIENTS = 20
SYNTHETIC_SEED = 1

ServerFactory = Callable[..., FhirTestServer]


@pytest.fixture(scope="session")
def synthetic_resources(tmp_path_factory: pytest.TempPathFactory) -> list[Resource]:
    """20 synthetic patients (~920 resources, 12 types), generated once per session.

    Treat as read-only: servers copy it, tests should too.
    """
    return generate_synthetic(tmp_path_factory.mktemp("fhir_server_synthetic"))


def generate_synthetic(out: Path) -> list[Resource]:
    """Generate the suite's synthetic data (defect-free) into ``out`` and read it back."""
    generate(
        GenerateOptions(
            patients=SYNTHETIC_PATIENTS,
            seed=SYNTHETIC_SEED,
            out=out,
            fmt="ndjson",
            defect_rate=0.0,
            as_of=SYNTHETIC_AS_OF,
        )
    )
    return load_ndjson_dir(out)


@pytest.fixture
def fhir_server(synthetic_resources: list[Resource]) -> Iterator[FhirTestServer]:
    """A running server over the synthetic resources, default (fault-free) scenario."""
    with FhirTestServer(synthetic_resources) as server:
        yield server


@pytest.fixture
def fhir_server_factory(synthetic_resources: list[Resource]) -> Iterator[ServerFactory]:
    """Start servers with custom settings; all are stopped at teardown.

    ``fhir_server_factory(scenario=..., auth=..., clock=..., resources=..., groups=...)``
    (resources default to ``synthetic_resources``).
    """
    started: list[FhirTestServer] = []

    def start(
        *,
        resources: Iterable[Resource] | None = None,
        scenario: Scenario | None = None,
        auth: ServerAuth | None = None,
        clock: Callable[[], datetime] | None = None,
        groups: Mapping[str, Iterable[str]] | None = None,
    ) -> FhirTestServer:
        server = FhirTestServer(
            synthetic_resources if resources is None else resources,
            scenario,
            auth,
            clock,
            groups=groups,
        )
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()
