"""The landing zone: immutable NDJSON.gz pages of resources exactly as received, plus manifests."""

from loaders.landing.zone import LandingPage, LandingZone, read_manifest, read_page

__all__ = ["LandingPage", "LandingZone", "read_manifest", "read_page"]
