"""Which landed pages a replay reads, in landing order, and the check that they are intact.

Pages are found through the run manifests (``<source>/_manifests/<run_id>.ndjson``): a manifest
row carries what a replay needs beyond the lines themselves (when the page was fetched, the
request of each line, its sha256 and line count). Runs are replayed in the order they started
(the timestamp in the run id, to the second; then their earliest page's ``created_at``), each
run's pages in the order it wrote them.

Selection: ``--since``/``--until`` compare a page's ``created_at``, which is the ``fetched_at``
of its resources (when they were fetched or read; for a retried quarantined resource, when it
was first read): ``since <= created_at < until``. ``--types`` keeps pages of those types, and
the deletions of those types in ``_deleted`` pages. Quarantine and Bulk error pages are never
replayed (``fhir-elt quarantine retry`` reads quarantine pages); pages on disk that no manifest
lists (a run killed before it wrote its manifest) are counted and reported, not replayed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from loaders.exceptions import ConfigError, LandingError, LandingIntegrityError
from loaders.fhir import is_known_resource_type
from loaders.landing import LandingPage, read_manifest
from loaders.landing.zone import validate_source_system

DELETED_PAGES = "_deleted"
MANIFESTS = "_manifests"


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """What a replay reads.

    Attributes:
        source_system: Only this source system (default: every one under the landing root).
        since: Only pages fetched at or after this instant.
        until: Only pages fetched before this instant.
        types: Only these resource types (default: all).
    """

    source_system: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ConfigError("--since must be before --until")
        unknown = [name for name in self.types if not is_known_resource_type(name)]
        if unknown:
            raise ConfigError(f"not FHIR R4 resource types: {', '.join(unknown)}")


def source_systems(root: Path, only: str | None) -> list[str]:
    """The source systems to replay: ``only``, or every one with run manifests under ``root``.

    Raises:
        LandingError: The landing root, or the source system's manifests, are missing.
    """
    if not root.is_dir():
        raise LandingError(f"no landing zone at {root}")
    if only is not None:
        validate_source_system(only)
        if not (root / only / MANIFESTS).is_dir():
            raise LandingError(f"no run manifests for source system {only!r} under {root}")
        return [only]
    found = sorted(path.name for path in root.iterdir() if (path / MANIFESTS).is_dir())
    if not found:
        raise LandingError(f"no run manifests under {root}: nothing to replay")
    return found


def _read_manifest(path: Path) -> list[LandingPage]:
    try:
        return read_manifest(path)
    except (OSError, ValueError, TypeError, KeyError, orjson.JSONDecodeError) as error:
        raise LandingIntegrityError(
            f"run manifest {path} cannot be read: {type(error).__name__}"
        ) from error


def _replayed(page: LandingPage, options: ReplayOptions) -> bool:
    if page.resource_type.startswith("_") and page.resource_type != DELETED_PAGES:
        return False  # quarantine, Bulk error pages: not resources
    if options.types and page.resource_type not in (*options.types, DELETED_PAGES):
        return False
    if options.since is not None and page.created_at < options.since:
        return False
    return options.until is None or page.created_at < options.until


@dataclass(frozen=True, slots=True)
class Selection:
    """The pages of one source system to replay, and the pages no manifest lists."""

    pages: list[LandingPage]
    unlisted: list[str]


def _landing_order(pages: list[LandingPage]) -> tuple[str, datetime, str]:
    """A run's place: the second it started (its id's prefix), its earliest page, its id."""
    run_id = pages[0].run_id
    return run_id.split("-", 1)[0], min(page.created_at for page in pages), run_id


def select_pages(root: Path, source_system: str, options: ReplayOptions) -> Selection:
    """The pages of ``source_system`` a replay with ``options`` reads, in landing order.

    Raises:
        LandingIntegrityError: A manifest cannot be read.
    """
    runs = [
        _read_manifest(path) for path in sorted((root / source_system / MANIFESTS).glob("*.ndjson"))
    ]
    runs = [pages for pages in runs if pages]
    runs.sort(key=_landing_order)
    listed = {page.landing_file for pages in runs for page in pages}
    on_disk = (
        path.relative_to(root).as_posix() for path in (root / source_system).glob("*/*/*.ndjson.gz")
    )
    unlisted = sorted(name for name in on_disk if name not in listed)
    chosen = [page for pages in runs for page in pages if _replayed(page, options)]
    return Selection(chosen, unlisted)


def verify_pages(root: Path, pages: Sequence[LandingPage]) -> None:
    """Check every page exists and matches its manifest sha256, before anything is merged.

    Raises:
        LandingIntegrityError: Naming the first page that is missing or altered.
    """
    for page in pages:
        path = root / page.landing_file
        digest = hashlib.sha256()
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except FileNotFoundError as error:
            raise LandingIntegrityError(
                f"landing page {page.landing_file} (run {page.run_id}) is missing"
            ) from error
        except OSError as error:
            raise LandingIntegrityError(
                f"landing page {page.landing_file} cannot be read: {error.strerror or error}"
            ) from error
        if digest.hexdigest() != page.sha256:
            raise LandingIntegrityError(
                f"landing page {page.landing_file} does not match its manifest sha256 "
                f"(run {page.run_id}): it was altered or truncated"
            )
