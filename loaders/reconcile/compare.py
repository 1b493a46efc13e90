"""Compare the source with the warehouse per resource type and window, and judge the outcome.

A check holds one window's counts before and after repair. ``delta = source - warehouse``:
positive means holes (the source holds resources the warehouse lacks), negative means the
warehouse holds current rows the source no longer has in that window (deleted there, or updated
since and so moved to a later window). The statuses recorded in ``reconciliation_checks``:

- ``ok``: counts agree (and, when ids were compared, ids agree too); nothing was done;
- ``repaired``: a difference was found and is gone after repair;
- ``delta``: a difference remains after repair (the command exits non-zero);
- ``over_budget``: a difference was found, but the repair budget was spent on other windows
  (the command exits non-zero; the next run repairs it);
- ``unchecked``: the server gave no count for the window, so nothing could be compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from loaders.reconcile.windows import WindowCount
from loaders.rest.windows import Window
from loaders.warehouse.operational import RECONCILIATION_CHECKS, reconciliation_checks_table

OK = "ok"
REPAIRED = "repaired"
DELTA = "delta"
OVER_BUDGET = "over_budget"
UNCHECKED = "unchecked"
FAILING = frozenset({DELTA, OVER_BUDGET})


@dataclass(slots=True)
class WindowCheck:
    """One resource type and window: what was found, what was done, how it ended.

    Attributes:
        resource_type: The type checked.
        window: ``(start, end]`` on ``_lastUpdated``.
        source_count: The source's count (latest asked), None when it gives none.
        warehouse_count: Current, non-deleted warehouse rows in the window (latest counted).
        initial_delta: The delta when first counted.
        checked_at: When the counts were last taken (UTC).
        ids_compared: Whether the window's ids were listed and compared.
        repaired: Whether anything was re-pulled, fetched or marked deleted for the window.
        resources_fetched: Resources received while repairing it (changed or not).
        marked_deleted: Resources marked deleted because the source no longer has them.
        over_budget: Whether its repair was skipped because the budget was spent.
        error: Why its repair failed, when it did (no identifiers).
    """

    resource_type: str
    window: Window
    source_count: int | None
    warehouse_count: int
    initial_delta: int | None
    checked_at: datetime
    ids_compared: bool = False
    repaired: bool = False
    resources_fetched: int = 0
    marked_deleted: int = 0
    over_budget: bool = False
    error: str | None = None

    @classmethod
    def from_count(cls, resource_type: str, counted: WindowCount, at: datetime) -> WindowCheck:
        """A check of a freshly counted window."""
        return cls(
            resource_type, counted.window, counted.source, counted.warehouse, counted.delta, at
        )

    @property
    def delta(self) -> int | None:
        """``source - warehouse`` now (None without a source count)."""
        return None if self.source_count is None else self.source_count - self.warehouse_count

    @property
    def differs(self) -> bool:
        """Whether the counts disagree now."""
        return bool(self.delta)

    @property
    def status(self) -> str:
        """The outcome recorded for the window (see the module docstring)."""
        if self.source_count is None:
            return UNCHECKED
        if self.over_budget:
            return OVER_BUDGET
        if self.delta:
            return DELTA
        return REPAIRED if self.repaired else OK

    def describe(self) -> str:
        """``Condition 2024-01-01T00:00:00.000Z..2024-02-01T00:00:00.000Z`` (no identifiers)."""
        return f"{self.resource_type} {self.window.describe()}"

    def row(self, run_id: str, source_system: str) -> dict[str, Any]:
        """The check as a ``reconciliation_checks`` row."""
        return {
            "run_id": run_id,
            "source_system": source_system,
            "resource_type": self.resource_type,
            "window_start": self.window.start,
            "window_end": self.window.end,
            "source_count": self.source_count,
            "warehouse_count": self.warehouse_count,
            "delta": self.delta,
            "initial_delta": self.initial_delta,
            "ids_compared": self.ids_compared,
            "repaired": self.repaired,
            "resources_fetched": self.resources_fetched,
            "marked_deleted": self.marked_deleted,
            "status": self.status,
            "checked_at": self.checked_at,
        }


CHECK_KEY = ("run_id", "resource_type", "window_end")


def checks_resource(checks: Sequence[WindowCheck], run_id: str, source_system: str) -> DltResource:
    """A dlt resource merging ``checks`` into ``reconciliation_checks`` (keyed by run, type
    and window end, so recording a run's checks twice adds nothing)."""
    rows = [check.row(run_id, source_system) for check in checks]
    return dlt.resource(
        [reconciliation_checks_table(rows)],
        name=RECONCILIATION_CHECKS,
        write_disposition="merge",
        primary_key=CHECK_KEY,
    )


def choose_repairs(
    checks: list[WindowCheck], budget: int
) -> tuple[list[WindowCheck], list[WindowCheck]]:
    """Split the differing windows into those repaired now and those over the budget.

    The largest differences go first (ties: oldest window first), so a small budget fixes the
    most resources. Windows without a source count cannot be repaired by count and are in
    neither list.

    Args:
        checks: Every window checked.
        budget: How many windows may be repaired in this run (0: none).
    """
    differing = [check for check in checks if check.source_count is not None and check.differs]
    differing.sort(
        key=lambda check: (
            -abs(check.delta or 0),
            check.resource_type,
            check.window.start is not None,
            check.window.start or check.window.end,
        )
    )
    return differing[: max(budget, 0)], differing[max(budget, 0) :]
