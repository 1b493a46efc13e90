"""Markdown tables and ``results.json`` of the reliability suite (``python -m tests.reliability``).

The fault matrix is a list of :class:`~tests.reliability.matrix.FaultOutcome`. The hostile-input
and PHI-scan figures come from other modules (``hostile_report.run()``, ``phi_scan.run()``) as
dataclasses holding ``rows`` (dataclasses, named tuples or dicts) and optional ``totals``; they
are rendered by their own ``markdown()`` when they have one, else by their field names, so
those modules can grow columns without a change here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.reliability.matrix import FaultOutcome

FAULT_COLUMNS = ("scenario", "runs", "expected", "lost", "duplicated", "outcome", "ok")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; numbers right-aligned, ``|`` in cells escaped."""
    body = [[_cell(value) for value in row] for row in rows]
    numeric = [
        bool(body) and all(_is_number(row[i]) for row in body if i < len(row))
        for i in range(len(columns))
    ]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if right else "---" for right in numeric) + "|",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in body)
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()


def fault_table(outcomes: Sequence[FaultOutcome]) -> str:
    """The fault matrix: scenario, runs, resources expected, lost, duplicated, outcome, ok."""
    rows = [[getattr(outcome, name) for name in FAULT_COLUMNS] for outcome in outcomes]
    return markdown_table(FAULT_COLUMNS, rows)


def as_record(item: Any) -> dict[str, Any]:
    """A row or totals object as an ordered dict: dataclass, named tuple, dict or sequence."""
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    if hasattr(item, "_asdict"):
        return dict(item._asdict())
    if isinstance(item, dict):
        return dict(item)
    if isinstance(item, list | tuple):
        return {f"column {i + 1}": value for i, value in enumerate(item)}
    return {"value": item}


def figures_table(figures: Any) -> str:
    """The figures' own ``markdown()`` table when they have one; else a table of
    ``figures.rows`` (columns from the first row), with ``figures.totals`` as a last row when
    it has the same columns, or as a line under the table."""
    own = getattr(figures, "markdown", None)
    if callable(own):
        return str(own())
    rows = [as_record(row) for row in getattr(figures, "rows", None) or []]
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    table = markdown_table(columns, [[row.get(c, "") for c in columns] for row in rows])
    totals = getattr(figures, "totals", None)
    if totals is None:
        return table
    record = as_record(totals)
    if set(record) <= set(columns):
        first = columns[0]
        cells = [record.get(c, "total" if c == first else "") for c in columns]
        return table + "\n| " + " | ".join(f"**{_cell(c)}**" for c in cells) + " |"
    summary = ", ".join(f"{name} {_cell(value)}" for name, value in record.items())
    return f"{table}\n\nTotals: {summary}"


def count_field(figures: Any, predicate: Any) -> int:
    """Sum of the integer fields whose name satisfies ``predicate``: from ``totals`` when it has
    such a field, else over ``rows`` (how crashes and PHI hits are counted)."""
    totals = getattr(figures, "totals", None)
    if totals is not None:
        record = as_record(totals)
        picked = [v for k, v in record.items() if predicate(k) and _is_int(v)]
        if picked:
            return sum(picked)
    total = 0
    for row in getattr(figures, "rows", None) or []:
        total += sum(v for k, v in as_record(row).items() if predicate(k) and _is_int(v))
    return total


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def crashes(figures: Any) -> int:
    """Crashes counted in hostile-input figures (fields named ``crashes``)."""
    return count_field(figures, lambda name: name == "crashes")


def phi_hits(figures: Any) -> int:
    """Hits counted in PHI-scan figures (fields whose name ends in ``hits``)."""
    return count_field(figures, lambda name: name.endswith("hits"))


def _json_ready(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _json_ready(v) for k, v in as_record(value).items()}
    if hasattr(value, "_asdict"):
        return {k: _json_ready(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_ready(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write ``results`` (dataclasses and tuples converted) as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_ready(results), indent=2) + "\n", encoding="utf-8")
