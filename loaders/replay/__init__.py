"""``fhir-elt replay``: rebuild the raw tables from the landing zone alone (see run.py).

Names are imported on first use (:mod:`loaders.lazy_names`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loaders.lazy_names import lazy_names

if TYPE_CHECKING:
    from loaders.replay.run import ReplayReport, SourceReplay, replay
    from loaders.replay.selection import ReplayOptions

__all__ = ["ReplayOptions", "ReplayReport", "SourceReplay", "replay"]

__getattr__ = lazy_names(
    __name__,
    {
        "ReplayReport": "loaders.replay.run",
        "SourceReplay": "loaders.replay.run",
        "replay": "loaders.replay.run",
        "ReplayOptions": "loaders.replay.selection",
    },
)
