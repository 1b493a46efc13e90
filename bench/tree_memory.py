"""Peak memory of a whole process tree, sampled from /proc while it runs.

``wait4``'s ``ru_maxrss`` is the peak of the largest single process among a command and its
reaped children, not their sum. A command that forks workers (``fhir-elt load files`` with
parse workers) needs the sum: this samples every process of the tree every ``interval``
seconds and keeps the largest total of proportional set sizes (PSS: a page shared by n
processes counts 1/n in each, so pages the workers share with the loader after the fork are
counted once). Sampling can miss a peak shorter than the interval.
"""

from __future__ import annotations

import threading
from pathlib import Path

_PROC = Path("/proc")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in (_PROC / str(pid) / "task").glob("*/children"):
        try:
            found.extend(int(child) for child in task.read_text().split())
        except OSError:
            continue
    return found


def _tree(pid: int) -> list[int]:
    pids, index = [pid], 0
    while index < len(pids):
        pids.extend(_children(pids[index]))
        index += 1
    return pids


def _pss_kb(pid: int) -> int:
    try:
        for line in (_PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreePssSampler:
    """Samples the summed PSS of ``pid`` and its descendants on a thread until stopped."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-pss", daemon=True)

    def __enter__(self) -> TreePssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(_pss_kb(pid) for pid in _tree(self.pid))
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(self.interval)
