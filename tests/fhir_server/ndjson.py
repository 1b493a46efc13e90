"""Read NDJSON resource files (as the synthetic generator writes them)."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.fhir_server.store import Resource


def load_ndjson_dir(path: Path | str) -> list[Resource]:
    """Every resource of every ``*.ndjson`` file in ``path`` (files in name order).

    Raises:
        FileNotFoundError: ``path`` is not a directory.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"not a directory: {directory}")
    resources: list[Resource] = []
    for file in sorted(directory.glob("*.ndjson")):
        with file.open("rb") as fh:
            resources.extend(orjson.loads(line) for line in fh if line.strip())
    return resources
