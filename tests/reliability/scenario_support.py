"""What every fault scenario shares: the test data, a work dir's settings, runs, the verdict.

A scenario runs fhir-elt in-process (``run_rest`` / ``run_bulk`` through
``tests/integration/rest_support.py`` and ``bulk_support.py``), records each run as a
:class:`RunResult` (exit code, and for a failing run the class of the error that ended it and
whether its message is fhir-elt's own), and turns the warehouse-against-truth comparison into a
:class:`~tests.reliability.matrix.FaultOutcome` with :func:`verdict`. Outcome lines carry
counts and class names only: never a message text, a payload or an identifier.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loaders.bulk.commands import run_bulk
from loaders.rest.commands import run_rest
from loaders.runs import own_cause
from loaders.settings import LoadSettings
from tests.fhir_server import FhirTestServer
from tests.fhir_server.fixtures import generate_synthetic
from tests.fhir_server.store import Resource
from tests.integration.warehouse_truth import Comparison, compare
from tests.reliability.matrix import FaultOutcome

Truth = dict[tuple[str, str], tuple[str, str]]
# The types the slower scenarios load (~336 of the ~920 resources: fewer pages, files and dlt
# loads per run), so the whole matrix stays test-sized.
SUBSET = ("Patient", "Encounter", "Condition", "Immunization", "MedicationRequest")


@functools.cache
def _synthetic() -> tuple[Resource, ...]:
    with tempfile.TemporaryDirectory(prefix="fhir-elt-reliability-") as folder:
        return tuple(generate_synthetic(Path(folder)))


def synthetic_resources() -> list[Resource]:
    """The test suite's synthetic data (20 patients, ~920 resources), generated once per
    process; servers copy what they are given, so the cached list is never changed."""
    return list(_synthetic())


def work_settings(work_dir: Path) -> LoadSettings:
    """A fresh warehouse and landing zone under ``work_dir`` (as ``tests/conftest.py``)."""
    return LoadSettings(
        duckdb_path=work_dir / "warehouse" / "fhir.duckdb",
        landing_root=work_dir / "landing",
        source_system="test",
        page_size=1000,
    )


def start_server(**kwargs: Any) -> FhirTestServer:
    """A started :class:`FhirTestServer` over the synthetic data (``resources=`` to override);
    the caller stops it (use it as a context manager)."""
    resources = kwargs.pop("resources", None)
    return FhirTestServer(synthetic_resources() if resources is None else resources, **kwargs)


def truth_of(server: FhirTestServer, types: tuple[str, ...]) -> Truth:
    """The server's truth restricted to ``types``."""
    return {key: value for key, value in server.truth().items() if key[0] in types}


@dataclass(frozen=True)
class RunResult:
    """How one fhir-elt run ended.

    Attributes:
        exit_code: The command's exit code (1 when it raised).
        error_kinds: Error classes of what failed (failed types, or the exception raised).
        clear: For a failing run: every failure came with a fhir-elt error message (not a
            bare library exception). True for a run that did not fail.
        report: The run's report (``SyncReport`` / ``BulkReport``), ``None`` when it raised.
    """

    exit_code: int
    error_kinds: tuple[str, ...] = ()
    clear: bool = True
    report: Any = None

    @property
    def failed(self) -> bool:
        return self.exit_code == 1


def _raised(error: BaseException) -> RunResult:
    cause = own_cause(error)
    kind = type(cause or error).__name__
    return RunResult(1, (kind,), cause is not None and bool(str(cause).strip()))


def rest_run(settings: LoadSettings, config: Any, **kwargs: Any) -> RunResult:
    """One ``load rest`` (or ``backfill`` with ``since=``); a raised error becomes exit 1."""
    try:
        report = run_rest(config.name, settings, config=config, progress=False, **kwargs)
    except Exception as error:  # dlt wraps ours; classified by own_cause
        return _raised(error)
    failed = [o for o in report.outcomes.values() if o.status == "failed"]
    kinds = tuple(sorted({o.error_kind or "unknown" for o in failed}))
    clear = all(o.error and o.error.strip() and o.error_kind for o in failed)
    return RunResult(report.exit_code, kinds, bool(clear), report)


def bulk_run(settings: LoadSettings, config: Any, **kwargs: Any) -> RunResult:
    """One ``load bulk``; a raised error becomes exit 1."""
    try:
        report = run_bulk(config.name, settings, config=config, progress=False, **kwargs)
    except Exception as error:  # dlt wraps ours; classified by own_cause
        return _raised(error)
    return RunResult(report.exit_code, (), True, report)


def retries(result: RunResult) -> int:
    """Requests of a run the client retried (``request_log`` outcome ``retry``)."""
    if result.report is None:
        return 0
    return sum(1 for r in result.report.requests if getattr(r, "outcome", None) == "retry")


def describe(result: RunResult) -> str:
    """``exit 0`` or ``exit 1 (RetriesExhausted)``."""
    kinds = f" ({', '.join(result.error_kinds)})" if result.error_kinds else ""
    return f"exit {result.exit_code}{kinds}"


def verdict(
    scenario: str,
    runs: list[RunResult],
    truth: Truth,
    settings: LoadSettings,
    source: str,
    detail: str,
    *,
    fault_seen: bool = True,
) -> FaultOutcome:
    """The scenario's row: the warehouse against ``truth`` after the last run.

    ``ok`` when nothing is lost, stale, duplicated or extra, the last run exited 0, every
    failing run ended with a clear message, and the fault was
    actually injected (``fault_seen``, from the server's counters: a scenario whose fault never
    fired proves nothing).
    """
    comparison: Comparison = compare(settings, truth, source)
    lost = len(comparison.lost) + len(comparison.stale)
    problems = []
    if comparison.extra:
        problems.append(f"{len(comparison.extra)} extra")
    if not fault_seen:
        problems.append("fault never fired")
    if any(run.failed and not run.clear for run in runs):
        problems.append("a failing run ended without a clear message")
    if runs[-1].exit_code != 0:
        problems.append(f"last run {describe(runs[-1])}")
    steps = "; then ".join(describe(run) for run in runs)
    outcome = f"{steps}: {detail}" + (f" [{', '.join(problems)}]" if problems else "")
    return FaultOutcome(
        scenario=scenario,
        runs=len(runs),
        expected=len(truth),
        lost=lost,
        duplicated=comparison.duplicated,
        outcome=outcome,
        ok=lost == 0 and comparison.duplicated == 0 and not problems,
    )


def crashed(scenario: str, error: BaseException) -> FaultOutcome:
    """The row of a scenario that raised (a harness or loader bug): the exception type only."""
    return FaultOutcome(scenario, 0, 0, 0, 0, f"scenario raised {type(error).__name__}", False)


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Poll ``condition`` every 5 ms until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
