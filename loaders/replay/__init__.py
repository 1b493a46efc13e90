"""``fhir-elt replay``: rebuild the raw tables from the landing zone alone (see run.py)."""

from loaders.replay.run import ReplayReport, SourceReplay, replay
from loaders.replay.selection import ReplayOptions

__all__ = ["ReplayOptions", "ReplayReport", "SourceReplay", "replay"]
