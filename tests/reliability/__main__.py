"""``python -m tests.reliability [--only faults|hostile|phi]`` (``make reliability``).

Runs every fault scenario (``faults_rest``, ``faults_bulk``, ``faults_crash``, ``faults_link``),
then the hostile-input corpus (``hostile_report.run()``), then the PHI and secret scan
(``phi_scan.run(work_dir)``); prints one markdown table per part on stdout, progress on stderr,
and writes ``tests/reliability/results.json``. A module that is missing is reported as "not
available" and skipped. Exit 1 when a fault row is not ok, a hostile input crashed fhir-elt, or
the scan found a canary or a secret; else 0.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.reliability import report
from tests.reliability.matrix import FaultOutcome, Scenario
from tests.reliability.scenario_support import crashed

PACKAGE = "tests.reliability"
FAULT_MODULES = ("faults_rest", "faults_bulk", "faults_crash", "faults_link")
PARTS = ("faults", "hostile", "phi")
RESULTS = Path(__file__).resolve().parent / "results.json"


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def optional_module(name: str) -> ModuleType | None:
    """``tests.reliability.<name>``, or ``None`` when that module does not exist (yet).

    Only the module itself missing counts: an import error inside it propagates.
    """
    qualified = f"{PACKAGE}.{name}"
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as error:
        if error.name == qualified:
            return None
        raise


def scenario_name(scenario: Scenario) -> str:
    """A readable name for a scenario function (used when it raised before naming itself)."""
    return getattr(scenario, "__name__", "scenario").replace("_", " ")


def run_scenario(scenario: Scenario, root: Path, keep: bool) -> FaultOutcome:
    """Run one scenario in a fresh work dir under ``root``; an exception is a failed row."""
    work_dir = Path(tempfile.mkdtemp(prefix="scenario-", dir=root))
    try:
        return scenario(work_dir)
    except Exception as error:
        return crashed(scenario_name(scenario), error)
    finally:
        if not keep:
            shutil.rmtree(work_dir, ignore_errors=True)


def run_faults(root: Path, keep: bool) -> tuple[list[FaultOutcome], list[str]]:
    """Every available fault module's scenarios, in order; and the modules not available."""
    outcomes: list[FaultOutcome] = []
    missing: list[str] = []
    for name in FAULT_MODULES:
        try:
            module = optional_module(name)
        except Exception as error:  # a broken module is a failed row, not a crashed runner
            outcomes.append(crashed(f"{name} (import)", error))
            continue
        if module is None:
            missing.append(name)
            _say(f"{name}: not available")
            continue
        scenarios: list[Scenario] = list(getattr(module, "SCENARIOS", []))
        for scenario in scenarios:
            started = time.monotonic()
            outcome = run_scenario(scenario, root, keep)
            verdict = "ok" if outcome.ok else "NOT OK"
            elapsed = time.monotonic() - started
            _say(f"  {name}: {outcome.scenario}: {verdict} ({elapsed:.1f} s)")
            outcomes.append(outcome)
    return outcomes, missing


def _figures(module_name: str, call: Any) -> tuple[Any, str]:
    """``(figures, their table)``, ``(None, "not available")`` or ``(None, "raised <Type>")``.

    The table is the module's own ``markdown(figures)`` when it has one.
    """
    try:
        module = optional_module(module_name)
    except Exception as error:
        return None, f"raised {type(error).__name__} on import"
    if module is None:
        return None, "not available"
    try:
        figures = call(module)
        render = getattr(module, "markdown", None)
        return figures, render(figures) if callable(render) else report.figures_table(figures)
    except Exception as error:
        return None, f"raised {type(error).__name__}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability",
        description="Fault matrix, hostile inputs and PHI/secret scan of fhir-elt.",
    )
    parser.add_argument("--only", choices=PARTS, help="run only this part")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results.json path")
    parser.add_argument("--keep", action="store_true", help="keep the scenarios' work dirs")
    parser.add_argument("-v", "--verbose", action="store_true", help="show loader warnings")
    return parser.parse_args(argv)


def quiet_logging(verbose: bool) -> None:
    """Loader and dlt warnings off unless ``verbose`` (process-wide: call from the command only)."""
    level = logging.WARNING if verbose else logging.CRITICAL
    # dlt sets its own logger's level from its config when a pipeline starts
    os.environ.setdefault("RUNTIME__LOG_LEVEL", logging.getLevelName(level))
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("dlt").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the parts asked for; logging is left as the caller set it (see quiet_logging)."""
    args = parse_args(argv)
    parts = (args.only,) if args.only else PARTS
    results: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(), "parts": parts}
    failures: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="fhir-elt-reliability-"))
    try:
        if "faults" in parts:
            _say("fault matrix:")
            outcomes, missing = run_faults(root, args.keep)
            _out("## Fault matrix\n")
            _out(report.fault_table(outcomes))
            for name in missing:
                _out(f"\n{name}: not available")
            bad = [o.scenario for o in outcomes if not o.ok]
            if bad:
                failures.append(f"fault rows not ok: {', '.join(bad)}")
            results["faults"] = {"rows": outcomes, "not_available": missing}
        if "hostile" in parts:
            _say("hostile inputs:")
            figures, table = _figures("hostile_report", lambda m: m.run())
            _out("\n## Hostile inputs\n")
            _out(table if figures is not None else f"hostile_report: {table}")
            if figures is not None and report.crashes(figures) > 0:
                failures.append(f"hostile inputs: {report.crashes(figures)} crash(es)")
            if figures is None and table != "not available":
                failures.append(f"hostile inputs: {table}")
            results["hostile"] = figures if figures is not None else {"status": table}
        if "phi" in parts:
            _say("PHI and secret scan:")
            scan_dir = Path(tempfile.mkdtemp(prefix="phi-", dir=root))
            figures, table = _figures("phi_scan", lambda m: m.run(scan_dir))
            _out("\n## PHI and secret scan\n")
            _out(table if figures is not None else f"phi_scan: {table}")
            if figures is not None and report.phi_hits(figures) > 0:
                failures.append(f"PHI/secret scan: {report.phi_hits(figures)} hit(s)")
            if figures is None and table != "not available":
                failures.append(f"PHI/secret scan: {table}")
            results["phi"] = figures if figures is not None else {"status": table}
    finally:
        if args.keep:
            _say(f"work dirs kept under {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    results["failures"] = failures
    results["ok"] = not failures
    results["finished_at"] = datetime.now(UTC).isoformat()
    report.write_results(args.results, results)
    _out()
    for failure in failures:
        _out(f"FAILED: {failure}")
    _out("all rows ok" if not failures else f"{len(failures)} failure(s)")
    return 0 if not failures else 1


if __name__ == "__main__":
    quiet_logging(verbose="-v" in sys.argv[1:] or "--verbose" in sys.argv[1:])
    sys.exit(main())
