"""A quarantined resource's original bytes, and what parsing them again gives today.

The bytes are read from the ``_quarantine`` landing page named by the quarantine row, after
the page is checked against its run's manifest (sha256 and line count), so a retry never reads
a page that was altered. They are parsed with today's code and configuration, exactly as a load
would: one resource, or a Bundle split into its entries (every entry must load).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from loaders.exceptions import LandingError, LandingIntegrityError
from loaders.files.bundles import BundleEntry, iter_bundle
from loaders.landing import read_manifest, read_page
from loaders.quarantine.records import QuarantineEntry
from loaders.resources import ParsedResource, Rejection, parse_resource_bytes, parse_resource_object


class PageCache:
    """Verified quarantine pages of one landing root, each read once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pages: dict[str, list[bytes]] = {}

    def lines(self, entry: QuarantineEntry) -> list[bytes]:
        """The verified lines of the entry's quarantine page.

        Raises:
            LandingError: No bytes were kept, or the page or its manifest is missing.
            LandingIntegrityError: The page does not match its manifest.
        """
        landing_file = entry.landing_file
        if landing_file is None:
            raise LandingError("no original bytes were kept for it (nothing could be read)")
        if landing_file not in self._pages:
            manifest = self.root / entry.source_system / "_manifests" / f"{entry.run_id}.ndjson"
            try:
                pages = read_manifest(manifest)
            except (OSError, ValueError, TypeError, KeyError) as error:
                raise LandingError(
                    f"the manifest of run {entry.run_id} ({manifest}) cannot be read: "
                    f"{type(error).__name__}"
                ) from error
            listed = [page for page in pages if page.landing_file == landing_file]
            if not listed:
                raise LandingIntegrityError(
                    f"quarantine page {landing_file} is not in the manifest of run {entry.run_id}"
                )
            try:
                self._pages[landing_file] = list(read_page(self.root, listed[0]))
            except OSError as error:
                raise LandingIntegrityError(
                    f"quarantine page {landing_file} cannot be read: {type(error).__name__}"
                ) from error
        return self._pages[landing_file]

    def original(self, entry: QuarantineEntry) -> bytes:
        """The entry's original bytes (one line of its quarantine page)."""
        lines = self.lines(entry)
        line = entry.landing_line
        if line is None or not 1 <= line <= len(lines):
            raise LandingIntegrityError(
                f"quarantine page {entry.landing_file} has no line {line} ({len(lines)} lines)"
            )
        return lines[line - 1]


def parse_again(raw: bytes) -> list[ParsedResource] | Rejection:
    """The resources ``raw`` gives today, or why it is still refused.

    A Bundle is split into its entries (as a file load splits one); it is accepted only if
    every entry is.
    """
    result = parse_resource_bytes(raw)
    if result.resource_type != "Bundle":
        return [result] if isinstance(result, ParsedResource) else result
    resources: list[ParsedResource] = []
    for item in iter_bundle(orjson.loads(raw)):
        if not isinstance(item, BundleEntry):
            return item[1]
        parsed = parse_resource_object(item.resource)
        if isinstance(parsed, Rejection):
            path = f"Bundle.entry[{item.index}].resource.{parsed.json_path}"
            return Rejection(parsed.reason, path, parsed.resource_type, parsed.resource_id)
        resources.append(parsed)
    return resources
