"""The hostile-input figures: the corpus through every entry point, plus a larger fuzzing pass.

``run()`` loads every case of ``tests/hostile`` in-process (``loaders.load_files``), the
command-line cases again through ``fhir-elt load files`` in a subprocess, the REST cases from
the local FHIR test server, then fuzzes the NDJSON reader, the Bundle reader and reference
rewriting with ``FUZZ_EXAMPLES`` examples each (default 2,000). Every run is judged by
:mod:`tests.hostile.run` (files and REST) or :mod:`tests.hostile.fuzz` (fuzzing): a clear
error, accepted, or a crash (must be 0). ``HOSTILE_SCALE`` multiplies the generated huge
resource and enormous pages (default 2).

``python -m tests.reliability.hostile_report`` prints the table.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

DEFAULT_FUZZ_EXAMPLES = 2000
DEFAULT_SCALE = 2


class HostileRow(NamedTuple):
    """One row of the table: a case (or a fuzz target) and how its runs ended."""

    case: str
    tried: int
    clear_errors: int
    accepted: int
    crashes: int


@dataclass
class HostileFigures:
    """Every row, their totals, and what went wrong where a run crashed.

    Attributes:
        rows: One per corpus case, REST case and fuzz target.
        problems: ``"<case> (<entry point>): <problem>"`` for every crash (empty when none).
        seconds: How long the whole pass took.
    """

    rows: list[HostileRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def totals(self) -> HostileRow:
        """The sum of every row."""
        return HostileRow(
            "total",
            sum(row.tried for row in self.rows),
            sum(row.clear_errors for row in self.rows),
            sum(row.accepted for row in self.rows),
            sum(row.crashes for row in self.rows),
        )

    @property
    def ok(self) -> bool:
        """No crash anywhere."""
        return self.totals.crashes == 0

    def markdown(self) -> str:
        """The table, totals last."""
        lines = [
            "| case | tried | clear errors | accepted | crashes |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in [*self.rows, self.totals]:
            name = f"**{row.case}**" if row.case == "total" else row.case
            lines.append(
                f"| {name} | {row.tried:,} | {row.clear_errors:,} | {row.accepted:,} | "
                f"{row.crashes:,} |"
            )
        return "\n".join(lines)


def _corpus(work: Path, scale: int, figures: HostileFigures) -> None:
    from tests.hostile.cases import all_cases
    from tests.hostile.run import prepare_template, run_case

    template = prepare_template(work)
    for case in all_cases(scale):
        results = [run_case(case, work / "case", template)]
        if case.cli:
            results.append(run_case(case, work / "case", template, cli=True))
        _add(figures, case.name, results)


def _add(figures: HostileFigures, name: str, results: list[Any]) -> None:
    verdicts = Counter(result.verdict for result in results)
    figures.rows.append(
        HostileRow(
            name,
            len(results),
            verdicts["clear_error"],
            verdicts["accepted"],
            verdicts["crash"],
        )
    )
    for result in results:
        figures.problems.extend(
            f"{result.case} ({result.entry_point}): {problem}" for problem in result.problems
        )


def _rest(work: Path, figures: HostileFigures) -> None:
    from loaders.synthetic import GenerateOptions, generate
    from tests.fhir_server.ndjson import load_ndjson_dir
    from tests.fhir_server.server import FhirTestServer
    from tests.hostile.rest_cases import REST_CASES

    data = work / "synthetic"
    generate(
        GenerateOptions(
            patients=20,
            seed=1,
            out=data,
            fmt="ndjson",
            defect_rate=0.0,
            as_of=datetime(2026, 6, 1, tzinfo=UTC),
        )
    )
    resources = load_ndjson_dir(data)
    servers: list[FhirTestServer] = []

    def start(**options: Any) -> FhirTestServer:
        server = FhirTestServer(resources, options.get("scenario"))
        servers.append(server.start())
        return server

    try:
        for rest_case in REST_CASES:
            result = rest_case(start, work / rest_case.__name__)
            _add(figures, result.case, [result])
    finally:
        for server in servers:
            server.stop()


def _fuzz_target(
    strategy: Any, check: Callable[[Any], Any], examples: int
) -> tuple[Counter[str], Counter[str]]:
    """Outcomes and crash reasons of ``check`` over ``examples`` generated values."""
    from hypothesis import HealthCheck, Phase, given, settings

    from tests.hostile.fuzz import CRASH

    counts: Counter[str] = Counter()
    whys: Counter[str] = Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def probe(value: Any) -> None:
        verdict = check(value)
        counts[verdict.outcome] += 1
        if verdict.outcome == CRASH:
            whys[verdict.why] += 1

    probe()
    return counts, whys


def _fuzz(figures: HostileFigures, examples: int) -> None:
    from tests.hostile import fuzz

    targets: list[tuple[str, Any, Callable[[Any], Any]]] = [
        ("fuzz: NDJSON reader", fuzz.ndjson_files(), lambda value: fuzz.check_ndjson(*value)),
        ("fuzz: Bundle reader", fuzz.bundles, fuzz.check_bundle),
        (
            "fuzz: reference rewriting",
            fuzz.references(),
            lambda value: fuzz.check_references(*value),
        ),
    ]
    for name, strategy, check in targets:
        counts, whys = _fuzz_target(strategy, check, examples)
        figures.rows.append(
            HostileRow(
                name,
                sum(counts.values()),
                counts[fuzz.CLEAR],
                counts[fuzz.ACCEPTED],
                counts[fuzz.CRASH],
            )
        )
        figures.problems.extend(f"{name}: {why} (x{count})" for why, count in whys.items())


def run(
    work_dir: Path | None = None,
    *,
    scale: int | None = None,
    fuzz_examples: int | None = None,
) -> HostileFigures:
    """Run the corpus (files, command line, REST) and the fuzzing pass; count the outcomes.

    Args:
        work_dir: Where warehouses and inputs go (a temporary directory if None).
        scale: Size multiplier of the generated big inputs (``HOSTILE_SCALE``, default 2).
        fuzz_examples: Examples per fuzz target (``FUZZ_EXAMPLES``, default 2,000).
    """
    scale = scale or int(os.environ.get("HOSTILE_SCALE", DEFAULT_SCALE))
    examples = fuzz_examples or int(os.environ.get("FUZZ_EXAMPLES", DEFAULT_FUZZ_EXAMPLES))
    started = time.monotonic()
    figures = HostileFigures()
    with tempfile.TemporaryDirectory(prefix="fhir-elt-hostile-") as scratch:
        work = work_dir or Path(scratch)
        _corpus(work / "files", scale, figures)
        _rest(work / "rest", figures)
        _fuzz(figures, examples)
    figures.seconds = time.monotonic() - started
    return figures


if __name__ == "__main__":
    result = run()
    sys.stdout.write(result.markdown() + "\n")
    for problem in result.problems:
        sys.stdout.write(f"- {problem}\n")
    sys.stdout.write(f"({result.seconds:.0f} s)\n")
    sys.exit(0 if result.ok else 1)
