"""``meta.versionId`` / ``meta.lastUpdated`` policy.

A resource is normally written a little after its clinical time (minutes to hours) and has
``versionId`` "1"; some were edited later ("2"/"3"). ``lastUpdated`` is never after
``as_of``. So that source-freshness checks (``max(last_updated)`` per type) always pass, the
first few resources of every type -- plus a small random share -- were touched within the
last six hours before ``as_of``.
"""

from __future__ import annotations

import random
from typing import Any

from loaders.synthetic.clock import DAY, HOUR, MINUTE, fhir_instant

#: Resources are "fresh" when updated within this many seconds before as_of.
FRESH_WINDOW = 6 * HOUR
#: How many resources of each type are guaranteed fresh (the first ones generated).
FRESH_PER_TYPE = 3
_P_FRESH = 0.004
_P_V3 = _P_FRESH + 0.02
_P_V2 = _P_V3 + 0.08
_MAX_LAG = 2 * HOUR


class MetaStamper:
    """Builds ``meta`` elements; one instance per generation run (it counts fresh stamps)."""

    __slots__ = ("_as_of", "_fresh_left")

    def __init__(self, as_of: int) -> None:
        """Create a stamper.

        Args:
            as_of: Epoch seconds the data is current as of; no stamp is later than this.
        """
        self._as_of = as_of
        self._fresh_left: dict[str, int] = {}

    def _take_fresh(self, rtype: str) -> bool:
        left = self._fresh_left.get(rtype, FRESH_PER_TYPE)
        if left <= 0:
            return False
        self._fresh_left[rtype] = left - 1
        return True

    def _fresh_stamp(self, rng: random.Random, t: int) -> dict[str, Any]:
        as_of = self._as_of
        lo = max(t, as_of - FRESH_WINDOW + MINUTE)
        lu = lo + int((as_of - lo) * rng.random())
        version = "1" if lu - t < DAY else ("2" if rng.random() < 0.7 else "3")
        return {"versionId": version, "lastUpdated": fhir_instant(lu)}

    def stamp(self, rtype: str, rng: random.Random, t: int) -> dict[str, Any]:
        """Meta for a resource whose clinical time is ``t`` (epoch seconds, <= as_of).

        Args:
            rtype: The resourceType (freshness is guaranteed per type).
            rng: The patient's random stream.
            t: The resource's clinical time (e.g. encounter end, observation issued).

        Returns:
            ``{"versionId": ..., "lastUpdated": ...}``.
        """
        left = self._fresh_left.get(rtype, FRESH_PER_TYPE)  # inlined _take_fresh (hot path)
        if left > 0:
            self._fresh_left[rtype] = left - 1
            return self._fresh_stamp(rng, t)
        as_of = self._as_of
        u = rng.random()
        if u < _P_FRESH:
            return self._fresh_stamp(rng, t)
        if u < _P_V2:
            version = "3" if u < _P_V3 else "2"
            lu = t + int(HOUR + 90 * DAY * rng.random())
        else:
            version = "1"
            lu = t + MINUTE + int(_MAX_LAG * rng.random())
        if lu > as_of:
            lu = t + int((as_of - t) * rng.random())
        return {"versionId": version, "lastUpdated": fhir_instant(lu)}

    def stamp_recent(
        self, rtype: str, rng: random.Random, not_before: int, days: int
    ) -> dict[str, Any]:
        """Meta for a resource touched recently: within ``days`` before as_of (skewed recent).

        Args:
            rtype: The resourceType.
            rng: Random stream.
            not_before: Earliest allowed lastUpdated (e.g. birth time).
            days: Maximum age of the update in days.

        Returns:
            ``{"versionId": ..., "lastUpdated": ...}``.
        """
        if self._take_fresh(rtype):
            return self._fresh_stamp(rng, not_before)
        u = rng.random()
        lu = max(not_before, self._as_of - int(days * DAY * u * u))
        version = "1" if u < 0.5 else ("2" if u < 0.85 else "3")
        return {"versionId": version, "lastUpdated": fhir_instant(lu)}
