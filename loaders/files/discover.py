"""Find the files under an input path that hold FHIR resources, in a stable order."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from loaders.exceptions import InputError


class InputKind(StrEnum):
    """How a file's resources are laid out."""

    NDJSON = "ndjson"  # one resource per line (Bulk Data export style), plain or gzip
    JSON = "json"  # one JSON document: a Bundle or a single resource


@dataclass(frozen=True, slots=True)
class InputFile:
    """One file to read.

    Attributes:
        path: Where it is.
        kind: How its resources are laid out.
        gzip: Whether it is gzip-compressed.
    """

    path: Path
    kind: InputKind
    gzip: bool


_SUFFIXES: dict[tuple[str, ...], tuple[InputKind, bool]] = {
    (".ndjson",): (InputKind.NDJSON, False),
    (".jsonl",): (InputKind.NDJSON, False),
    (".ndjson", ".gz"): (InputKind.NDJSON, True),
    (".jsonl", ".gz"): (InputKind.NDJSON, True),
    (".json",): (InputKind.JSON, False),
    (".json", ".gz"): (InputKind.JSON, True),
}


def classify(path: Path) -> InputFile | None:
    """The InputFile for ``path``, or None if its name does not look like FHIR data.

    Names beginning with ``_`` or ``.`` are metadata (manifests, defect lists), not data.
    """
    if path.name.startswith(("_", ".")):
        return None
    suffixes = tuple(suffix.lower() for suffix in path.suffixes[-2:])
    for length in (2, 1):
        match = _SUFFIXES.get(suffixes[-length:])
        if match is not None and len(suffixes) >= length:
            kind, gzip = match
            return InputFile(path=path, kind=kind, gzip=gzip)
    return None


def discover_input_files(path: Path) -> list[InputFile]:
    """All FHIR data files at ``path`` (a file, or a directory searched recursively).

    Args:
        path: A file or directory.

    Returns:
        The files sorted by path, so that two runs over the same input read it in one order.

    Raises:
        InputError: The path does not exist, or holds no file with a known FHIR data suffix.
    """
    if not path.exists():
        raise InputError(f"input path does not exist: {path}")
    if path.is_file():
        found = classify(path)
        if found is None:
            raise InputError(
                f"not a FHIR data file (expected .ndjson, .ndjson.gz, .jsonl or .json): {path}"
            )
        return [found]
    files = [
        found
        for candidate in sorted(path.rglob("*"))
        if candidate.is_file()
        and not any(part.startswith(("_", ".")) for part in candidate.relative_to(path).parts[:-1])
        and (found := classify(candidate)) is not None
    ]
    if not files:
        raise InputError(f"no .ndjson, .ndjson.gz, .jsonl or .json files under {path}")
    return files
