"""``fhir-elt replay``: rebuild the raw tables from the landing zone alone (see run.py).

The names below are imported on first use, so ``fhir-elt``'s start-up (which builds every
subcommand's parser) does not load replay's dependencies (reconcile, REST, httpx).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loaders.replay.run import ReplayReport, SourceReplay, replay
    from loaders.replay.selection import ReplayOptions

_HOMES = {
    "ReplayReport": "loaders.replay.run",
    "SourceReplay": "loaders.replay.run",
    "replay": "loaders.replay.run",
    "ReplayOptions": "loaders.replay.selection",
}

__all__ = ["ReplayOptions", "ReplayReport", "SourceReplay", "replay"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
