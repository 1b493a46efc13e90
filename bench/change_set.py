"""The 1% change set of the load benchmark: new versions of every hundredth resource.

Each chosen resource becomes its next version, as a source would send it: ``meta.versionId``
plus one, ``meta.lastUpdated`` later than anything in the data set, and a changed element (the
narrative ``text``, which every resource type has). Written as NDJSON, one file per type, in a
directory of its own, so a load of that directory is an incremental load.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson

_NARRATIVE = {
    "status": "generated",
    "div": '<div xmlns="http://www.w3.org/1999/xhtml">revised</div>',
}


def write_change_set(data: Path, out: Path, updated_at: datetime, every: int = 100) -> int:
    """Write new versions of every ``every``-th line of each NDJSON file; return how many.

    Args:
        data: The generated NDJSON files (``<Type>.ndjson``).
        out: Directory for the change set (replaced).
        updated_at: Their ``meta.lastUpdated``; later than every stored version.
        every: One resource in ``every`` changes (100: 1%).
    """
    out.mkdir(parents=True, exist_ok=True)
    stamp = updated_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    written = 0
    for path in sorted(data.glob("*.ndjson")):
        lines = []
        with path.open("rb") as handle:
            for number, line in enumerate(handle):
                if number % every:
                    continue
                resource = orjson.loads(line)
                meta = resource.setdefault("meta", {})
                version = str(meta.get("versionId", "1"))
                meta["versionId"] = str(int(version) + 1) if version.isdigit() else "2"
                meta["lastUpdated"] = stamp
                resource["text"] = _NARRATIVE
                lines.append(orjson.dumps(resource))
        if lines:
            (out / path.name).write_bytes(b"\n".join(lines) + b"\n")
        written += len(lines)
    return written
