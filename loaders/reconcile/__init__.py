"""Reconciliation: prove the warehouse holds what the source holds, repair it, find deletions.

Modules, one job each:

- ``windows``: bisect a ``_lastUpdated`` range into windows by both sides' counts;
- ``warehouse``: the warehouse's current, non-deleted rows per window (counts, ids, rows);
- ``compare``: a window's check, its status, and which differing windows the budget repairs;
- ``sweep``: compare a window's ids on both sides and plan the searches by ``_id``;
- ``deletes``: the raw rows and landing lines that mark a resource deleted;
- ``repair``: re-pull windows and fix ids through the REST task code, one merge per phase;
- ``run``: the command's phases and its record in ``reconciliation_checks``;
- ``commands``: the CLI entry point and its printed report.
"""

from loaders.reconcile.commands import report_lines, run_reconcile
from loaders.reconcile.run import ReconcileOptions, ReconcileReport, reconcile

__all__ = ["ReconcileOptions", "ReconcileReport", "reconcile", "report_lines", "run_reconcile"]
