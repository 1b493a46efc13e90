"""Plain-text tables for the operator commands (``status``, ``doctor``): aligned, no colours."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta


def render_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  "
) -> str:
    """``rows`` under ``headers``, columns padded to their widest cell; numbers right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], len(text))
    numeric = [
        all(isinstance(row[index], int | float) or row[index] is None for row in rows)
        and bool(rows)
        for index in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(widths[i]) if numeric[i] else value.ljust(widths[i])
            for i, value in enumerate(values)
        ]
        return (indent + "  ".join(parts)).rstrip()

    out = [line(headers), line(["-" * width for width in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def age(moment: datetime | None, now: datetime) -> str:
    """How long ago ``moment`` was, compactly: ``45m``, ``3h 12m``, ``2d 4h``; ``-`` if None."""
    if moment is None:
        return "-"
    return duration(now - moment)


def duration(span: timedelta | float | None) -> str:
    """A duration (or seconds) as ``12s``, ``3m 05s``, ``3h 12m``, ``2d 4h``."""
    if span is None:
        return "-"
    seconds = span.total_seconds() if isinstance(span, timedelta) else float(span)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{sign}{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{sign}{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{sign}{days}d {hours}h"
