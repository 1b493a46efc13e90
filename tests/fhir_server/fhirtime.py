"""FHIR date/instant parsing and search-prefix comparison (precision-aware, UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

PREFIXES: frozenset[str] = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})

_SEARCH_VALUE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


class FhirDateError(ValueError):
    """A search value or resource element is not a FHIR date/dateTime/instant."""


def format_instant(value: datetime) -> str:
    """Format ``value`` as a FHIR instant in UTC with millisecond precision."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+00:00"


def parse_instant(value: str) -> datetime:
    """Parse a resource's date/dateTime/instant into an aware UTC datetime.

    Date-only and partial values resolve to the start of their range; a missing offset
    is read as UTC.

    Raises:
        FhirDateError: ``value`` is not a FHIR date, dateTime or instant.
    """
    return parse_search_date(value)[0]


def parse_search_date(value: str) -> tuple[datetime, datetime]:
    """Parse a search value into its implicit half-open range ``[low, high)`` (UTC).

    ``2025`` covers the year, ``2025-03-04`` the day, ``...T10:11:12Z`` the second and
    ``...T10:11:12.123Z`` the millisecond, as the FHIR search specification describes.

    Raises:
        FhirDateError: ``value`` is not a FHIR date, dateTime or instant.
    """
    match = _SEARCH_VALUE.match(value)
    if match is None:
        raise FhirDateError(f"not a FHIR date/dateTime: {value!r}")
    parts = match.groupdict()
    try:
        year = int(parts["year"])
        if parts["month"] is None:
            low = datetime(year, 1, 1, tzinfo=UTC)
            return low, datetime(year + 1, 1, 1, tzinfo=UTC)
        month = int(parts["month"])
        if parts["day"] is None:
            low = datetime(year, month, 1, tzinfo=UTC)
            high = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return low, high
        day = int(parts["day"])
        if parts["hour"] is None:
            low = datetime(year, month, day, tzinfo=UTC)
            return low, low + timedelta(days=1)
        tz = parts["tz"]
        offset = timedelta(0)
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            offset = sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        fraction = parts["fraction"] or ""
        micro = int((fraction + "000000")[:6]) if fraction else 0
        local = datetime(
            year,
            month,
            day,
            int(parts["hour"]),
            int(parts["minute"]),
            int(parts["second"] or 0),
            micro,
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise FhirDateError(f"not a valid date: {value!r} ({exc})") from exc
    low = local - offset
    if parts["second"] is None:
        step = timedelta(minutes=1)
    elif not fraction:
        step = timedelta(seconds=1)
    else:
        step = timedelta(microseconds=max(1, 10 ** (6 - min(len(fraction), 6))))
    return low, low + step


def split_prefix(value: str) -> tuple[str, str]:
    """Split ``ge2025-01-01`` into ``("ge", "2025-01-01")``; no prefix means ``eq``."""
    if len(value) > 2 and value[:2] in PREFIXES and value[2].isdigit():
        return value[:2], value[2:]
    return "eq", value


def matches(instant: datetime, prefix: str, low: datetime, high: datetime) -> bool:
    """Whether a resource ``instant`` satisfies ``prefix`` against the range ``[low, high)``."""
    if prefix in ("eq", "ap"):
        return low <= instant < high
    if prefix == "ne":
        return not low <= instant < high
    if prefix in ("gt", "sa"):
        return instant >= high
    if prefix == "ge":
        return instant >= low
    if prefix in ("lt", "eb"):
        return instant < low
    if prefix == "le":
        return instant < high
    raise FhirDateError(f"unknown prefix {prefix!r}")
