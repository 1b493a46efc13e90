"""Epoch-second time arithmetic and fast FHIR ``date`` / ``instant`` formatting.

Every time inside the generator is an ``int`` number of seconds since the Unix epoch (UTC);
strings are produced only when a resource is built. Formatting goes through a per-day cache
because ``datetime.isoformat`` is one of the most expensive calls on the hot path.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

MINUTE = 60
HOUR = 3600
DAY = 86_400
YEAR = 31_556_952  # 365.2425 days

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_CACHE: dict[int, str] = {}
_HHMM: tuple[str, ...] = tuple(f"{h:02d}:{m:02d}" for h in range(24) for m in range(60))
_SS: tuple[str, ...] = tuple(f"{s:02d}" for s in range(60))


def fhir_date(t: int) -> str:
    """Format epoch seconds as a FHIR ``date`` (``YYYY-MM-DD``, UTC).

    Args:
        t: Seconds since the Unix epoch.

    Returns:
        The calendar date of ``t`` in UTC.
    """
    d = t // DAY
    s = _DAY_CACHE.get(d)
    if s is None:
        s = date.fromordinal(_EPOCH_ORDINAL + d).isoformat()
        _DAY_CACHE[d] = s
    return s


def fhir_instant(t: int) -> str:
    """Format epoch seconds as a FHIR ``instant``/``dateTime`` with a ``+00:00`` offset.

    Args:
        t: Seconds since the Unix epoch.

    Returns:
        For example ``"2026-11-21T08:15:30+00:00"``.
    """
    d, r = divmod(t, DAY)
    s = _DAY_CACHE.get(d)
    if s is None:
        s = fhir_date(t)
    return f"{s}T{_HHMM[r // 60]}:{_SS[r % 60]}+00:00"


def to_epoch(dt: datetime) -> int:
    """Convert a timezone-aware datetime to whole epoch seconds (sub-seconds dropped)."""
    return int(dt.astimezone(UTC).replace(microsecond=0).timestamp())


def from_epoch(t: int) -> datetime:
    """Convert epoch seconds to a UTC datetime."""
    return datetime.fromtimestamp(t, tz=UTC)
