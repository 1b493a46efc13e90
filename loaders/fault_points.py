"""Fault-injection points for the reliability suite: pause a run at a named point of its work.

Off unless ``FHIR_ELT_FAULT_PAUSE_AT`` is set (the check is one environment lookup). The suite
(``tests/reliability/faults_crash.py``) sets it on a ``fhir-elt`` subprocess, waits until the
process reports that it reached the point, and then kills it with ``SIGKILL``, so a crash lands
at the same place on a busy CI machine as on an idle one.

Environment:
    FHIR_ELT_FAULT_PAUSE_AT: ``<point>`` or ``<point>:<n>`` (pause the ``n``-th time the point
        is reached; default the first). Points:

        ``landing``    a landing page's bytes are written to its temporary name, not yet
                       renamed into place (``loaders/landing/zone.py``);
        ``merge``      a batch's rows are inserted into a raw table, not yet committed
                       (``loaders/warehouse/raw_writer.py``);
        ``committed``  the merge's raw rows are committed, the dlt load carrying the run's
                       cursor or checkpoint has not started (``raw_writer.py``).
    FHIR_ELT_FAULT_SIGNAL: a file path. On reaching the point the process creates it (holding
        the point's name) and pauses until the file is deleted (or the process is killed).
        Without it the process pauses until killed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

PAUSE_AT_ENV = "FHIR_ELT_FAULT_PAUSE_AT"
SIGNAL_ENV = "FHIR_ELT_FAULT_SIGNAL"
POINTS = ("landing", "merge", "committed")

_counts: dict[str, int] = {}
_lock = threading.Lock()


def reached(point: str) -> None:
    """Pause here if ``FHIR_ELT_FAULT_PAUSE_AT`` names ``point`` (and this is its ``n``-th time).

    Args:
        point: One of :data:`POINTS`.
    """
    wanted = os.environ.get(PAUSE_AT_ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != point:
        return
    with _lock:
        _counts[point] = _counts.get(point, 0) + 1
        if _counts[point] != (int(nth) if nth else 1):
            return
    logger.warning("fault point %s reached: pausing (%s is set)", point, PAUSE_AT_ENV)
    signal_file = os.environ.get(SIGNAL_ENV)
    if not signal_file:
        while True:
            time.sleep(3600)
    path = Path(signal_file)
    path.write_text(point)
    while path.exists():
        time.sleep(0.02)
