"""Where an invalid resource came from, and the Rejection it is quarantined with.

Loaders that know each resource's file and line (``load files``) pass an :class:`Origin` per
resource; the others are quarantined under the page's request id and the resource's position
in the page.
"""

from __future__ import annotations

from dataclasses import dataclass

from loaders.resources import ParsedResource, Rejection, RejectReason
from loaders.validation.errors import Finding


@dataclass(frozen=True, slots=True)
class Origin:
    """Where one resource was read.

    Attributes:
        source: The file (or request) it came from.
        line: Its line in ``source`` (the Bundle's line for a Bundle entry).
        bundle_entry: The index of its entry when it came from a Bundle, else None.
    """

    source: str
    line: int
    bundle_entry: int | None = None


def invalid_resource(resource: ParsedResource, finding: Finding, origin: Origin) -> Rejection:
    """The Rejection for ``resource``: reason ``invalid_fhir_resource``, the finding's path.

    For a Bundle entry the path is relative to the Bundle, as for every other refusal of an
    entry (``Bundle.entry[3].resource.birthDate``); otherwise it starts at the type
    (``Patient.birthDate``).
    """
    path = finding.json_path
    if origin.bundle_entry is not None:
        relative = path.removeprefix(resource.resource_type)
        path = f"Bundle.entry[{origin.bundle_entry}].resource{relative}"
    return Rejection(RejectReason.INVALID_FHIR_RESOURCE, path, resource.resource_type, resource.id)
