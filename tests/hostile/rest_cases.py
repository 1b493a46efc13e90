"""Hostile content served by the local FHIR test server to ``load rest``.

Two cases, each judged like the file cases (:mod:`tests.hostile.run`) against the server's
``truth()``:

- ``rest_drift_and_odd_content``: after a clean run, one Patient comes back with
  ``gender`` a number (an element staging reads: drift policy ``fail``) and the marker in its
  name, and one Observation with NUL, emoji and the marker in ``code.text`` and a reference to
  a Patient that does not exist. The run must raise ``SchemaDriftError`` naming the JSON path,
  with nothing of its round merged (earlier rows untouched); once the server fixes the
  Patient, the next run loads everything exactly, the odd Observation included.
- ``rest_malformed_page``: Observation page 2 is truncated JSON with status 200: that type
  fails with ``MalformedResponseError``, every other type loads exactly, nothing is stored
  twice, and no message carries a value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loaders.exceptions import SchemaDriftError
from loaders.settings import LoadSettings
from tests.fhir_server.scenario import Scenario
from tests.fhir_server.server import FhirTestServer
from tests.hostile.cases import MARKER
from tests.hostile.run import ACCEPTED, CLEAR_ERROR, CRASH, CaseResult, captured_logs, leaks_marker
from tests.integration.rest_support import compare, rest_config, run

StartServer = Callable[..., FhirTestServer]
SETTLE_SECONDS = 1.1
ODD_TEXT = f"{MARKER}\u0000\u202e\U0001f600"


def _settings(work: Path) -> LoadSettings:
    return LoadSettings(
        duckdb_path=work / "warehouse" / "fhir.duckdb",
        landing_root=work / "landing",
        source_system="ehr",
        page_size=1000,
    )


def _captured_run(settings: LoadSettings, server: FhirTestServer) -> tuple[Any, list[str]]:
    with captured_logs() as lines:
        report = run(settings, rest_config(server.base_url))
    from loaders.rest.commands import report_lines

    out, err = report_lines(report)
    return report, [*lines, *out, *err]


def _judge(result: CaseResult) -> CaseResult:
    result.verdict = CRASH if result.problems else CLEAR_ERROR
    return result


def drift_and_odd_content(start: StartServer, work: Path) -> CaseResult:
    """A Patient of the wrong JSON kind and an odd Observation on a second run, then a fix."""
    result = CaseResult("rest_drift_and_odd_content", "rest", CRASH)
    settings = _settings(work)
    server = start()
    first = run(settings, rest_config(server.base_url))
    if first.exit_code != 0 or not compare(settings, server.truth()).exact:
        result.problems.append("the clean first run did not load the server's truth")
        return result
    before = server.truth()
    patient_id = sorted(key[1] for key in before if key[0] == "Patient")[0]
    observation_id = sorted(key[1] for key in before if key[0] == "Observation")[0]

    def hostile_patient(resource: dict[str, Any]) -> None:
        resource["gender"] = 5
        resource["name"] = [{"family": ODD_TEXT}]

    def odd_observation(resource: dict[str, Any]) -> None:
        resource["code"] = {"text": ODD_TEXT}
        resource["subject"] = {"reference": f"Patient/{MARKER}-never-delivered"}

    server.update("Patient", patient_id, hostile_patient)
    server.update("Observation", observation_id, odd_observation)
    # The REST loader's windows end a moment before "now" (changes still being written are
    # left for the next run): let the updates fall inside this run's window.
    time.sleep(SETTLE_SECONDS)
    error, messages = _failing_run(settings, server)
    if not isinstance(error, SchemaDriftError):
        result.problems.append(f"the run ended with {type(error).__name__}, not SchemaDriftError")
    elif "Patient.gender" not in str(error):
        result.problems.append("the drift error does not name the JSON path")
    # A kind mismatch stops the whole round before its commit: nothing of it is merged.
    comparison = compare(settings, server.truth())
    if comparison.duplicated or comparison.extra or comparison.lost:
        result.problems.append("keys lost, duplicated or extra after the failed run")
    if comparison.stale != {("Patient", patient_id), ("Observation", observation_id)}:
        result.problems.append("partial merge: rows of the failed run are stored")
    # The source is fixed; the odd Observation (dangling reference, NUL, emoji) loads.
    server.update("Patient", patient_id, lambda resource: resource.update(gender="unknown"))
    time.sleep(SETTLE_SECONDS)
    report, more = _captured_run(settings, server)
    messages.extend(more)
    if report.exit_code != 0 or not compare(settings, server.truth()).exact:
        result.problems.append("the run after the fix did not load the server's truth")
    if leaks_marker(messages):
        result.problems.append("a payload value appears in a message or log line")
    result.detail = "SchemaDriftError, nothing merged; after the fix exact"
    return _judge(result)


def _failing_run(settings: LoadSettings, server: FhirTestServer) -> tuple[Exception, list[str]]:
    """A run expected to raise: (what it raised, its log lines and message)."""
    with captured_logs() as lines:
        try:
            run(settings, rest_config(server.base_url))
            error: Exception = AssertionError("the run did not fail")
        except Exception as raised:  # judged by the caller
            error = raised
    return error, [*lines, str(error)]


def malformed_page(start: StartServer, work: Path) -> CaseResult:
    """Observation page 2 is truncated JSON."""
    result = CaseResult("rest_malformed_page", "rest", CRASH)
    settings = _settings(work)
    server = start(scenario=Scenario(malformed_page=("Observation", 2)))
    report, messages = _captured_run(settings, server)
    observation = report.outcomes.get("Observation")
    if observation is None or observation.error_kind != "MalformedResponseError":
        result.problems.append("Observation did not fail with MalformedResponseError")
    else:
        messages.append(observation.error or "")
        if "Observation search page" not in (observation.error or ""):
            result.problems.append("the error does not name the page")
    comparison = compare(settings, server.truth())
    if comparison.duplicated or comparison.extra or comparison.stale:
        result.problems.append("keys duplicated, extra or stale")
    if {key[0] for key in comparison.lost} - {"Observation"}:
        result.problems.append("types other than Observation lost rows")
    if leaks_marker(messages):
        result.problems.append("a payload value appears in a message or log line")
    result.detail = "Observation: MalformedResponseError; other types exact"
    return _judge(result)


REST_CASES: list[Callable[[StartServer, Path], CaseResult]] = [
    drift_and_odd_content,
    malformed_page,
]

__all__ = ["ACCEPTED", "REST_CASES", "drift_and_odd_content", "malformed_page"]
