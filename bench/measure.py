"""Time a command in a fresh process and read its peak memory; repeat and take medians.

Peak memory, two ways: the maximum resident set size the kernel reports when the process is
reaped (``wait4``'s ``ru_maxrss``: the largest single process among the command and its
children, an exact peak, free to read), and the peak summed PSS of the whole process tree
sampled every 0.1 s (``bench/tree_memory.py``), which counts forked workers (``load files``
parse workers). Sampling is not free: reading ``smaps_rollup`` walks each process's page
tables, and at 1,000,000 resources it made ``load files`` 0.6-0.9 s slower (12.5 vs 11.6-11.9
s, three runs each). So the timed repetitions are not sampled; the tree's PSS comes from one
more repetition of the step, run after them and left out of the times.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.tree_memory import TreePssSampler


@dataclass(frozen=True, slots=True)
class Sample:
    """One run of a command."""

    seconds: float
    peak_rss_mb: float
    peak_tree_pss_mb: float = 0.0


@dataclass(slots=True)
class Measurement:
    """Repetitions of one step; the figures reported are medians.

    Attributes:
        samples: The timed repetitions (not sampled for the tree's PSS).
        memory: The extra repetition whose process tree was sampled; its time is not used.
    """

    name: str
    samples: list[Sample] = field(default_factory=list)
    memory: Sample | None = None

    @property
    def seconds(self) -> float:
        return statistics.median(sample.seconds for sample in self.samples)

    @property
    def peak_rss_mb(self) -> float:
        return statistics.median(sample.peak_rss_mb for sample in self.samples)

    @property
    def peak_tree_pss_mb(self) -> float:
        return self.memory.peak_tree_pss_mb if self.memory is not None else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "seconds": round(self.seconds, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "peak_tree_pss_mb": round(self.peak_tree_pss_mb, 1),
            "reps_seconds": [round(sample.seconds, 3) for sample in self.samples],
            "reps_peak_rss_mb": [round(sample.peak_rss_mb, 1) for sample in self.samples],
            # the sampled repetition: its time shows what sampling costs
            "memory_rep_seconds": round(self.memory.seconds, 3) if self.memory else None,
        }


class CommandFailed(RuntimeError):
    """A measured command exited with a status it should not have."""


def run_measured(
    command: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ok_statuses: frozenset[int] = frozenset({0}),
    log: Path | None = None,
    sample_tree: bool = False,
) -> Sample:
    """Run ``command`` to its end; its wall time and peak RSS (and, if ``sample_tree``, the
    peak PSS of its process tree; the sampling slows the command).

    Output goes to ``log`` (appended) or is discarded. A status outside ``ok_statuses`` raises
    CommandFailed naming the log.
    """
    sink = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(part) for part in command],
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        tree = TreePssSampler(process.pid)
        with tree if sample_tree else contextlib.nullcontext():
            _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log is not None:
            sink.close()  # type: ignore[union-attr]
    if process.returncode not in ok_statuses:
        raise CommandFailed(
            f"{Path(str(command[0])).name} exited with {process.returncode}; see {log}"
        )
    # ru_maxrss is in kilobytes on Linux.
    return Sample(
        seconds=seconds, peak_rss_mb=usage.ru_maxrss / 1024, peak_tree_pss_mb=tree.peak_mb
    )


def repeat(
    name: str,
    reps: int,
    prepare: Callable[[int], None],
    run: Callable[[int, bool], Sample],
) -> Measurement:
    """``reps`` times: ``prepare(rep)`` (not timed), then ``run(rep, False)`` (timed); then once
    more ``prepare(reps)`` and ``run(reps, True)``, the repetition whose process tree is sampled.
    """
    measurement = Measurement(name)
    for rep in range(reps):
        prepare(rep)
        sample = run(rep, False)
        measurement.samples.append(sample)
        sys.stderr.write(
            f"  {name} rep {rep + 1}/{reps}: {sample.seconds:.2f} s, {sample.peak_rss_mb:.0f} MB\n"
        )
    prepare(reps)
    memory = measurement.memory = run(reps, True)
    sys.stderr.write(
        f"  {name} sampled rep: tree PSS {memory.peak_tree_pss_mb:.0f} MB "
        f"({memory.seconds:.2f} s, not timed)\n"
    )
    return measurement
