"""The fault matrix: what one scenario reports, and the registry of every scenario.

A scenario is a function that gets a fresh, empty work directory, runs fhir-elt against the
local FHIR test server (and the warehouse under that directory) with one fault switched on, and
compares the warehouse with the server's truth. It returns a :class:`FaultOutcome`; it never
raises for a fault it was meant to survive (a failure to survive is ``ok=False`` with the reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FaultOutcome:
    """One row of the fault matrix.

    Attributes:
        scenario: Short name, e.g. ``"429 storm"``.
        runs: fhir-elt runs it took (a failing run plus its resume counts 2).
        expected: Resources the server holds (its truth) at the end.
        lost: Resources of the truth missing from, or stale in, the warehouse.
        duplicated: Keys stored more than once.
        outcome: One line: how it ended (``"recovered: 41 retries"``, ``"exit 1: <message>;
            resumed"``). Never a payload or identifier.
        ok: Lost and duplicated are 0 and every failing run ended with a clear message and a
            resumable state.
    """

    scenario: str
    runs: int
    expected: int
    lost: int
    duplicated: int
    outcome: str
    ok: bool


Scenario = Callable[[Path], FaultOutcome]
