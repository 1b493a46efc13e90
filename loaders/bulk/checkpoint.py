"""Where a Bulk Data export stands, kept in dlt state so a crash or ``kill -9`` resumes it.

State lives in the raw resource's dlt state under ``bulk`` (stored in the warehouse with the
rows, so an ephemeral runner restores it from there)::

    bulk.since.<export>          transactionTime of the last export merged in full: the next
                                 export's _since (the server's clock, never the client's)
    bulk.jobs.<export>           the job in flight: status URL, when it was kicked off, its
                                 _since, and finished.<file key> = resources, per file merged
    bulk.last.<export>           a summary of the last export merged in full

``<export>`` names what is exported (``system|*``, ``group/g1|Encounter,Patient``): each
scope and type list has its own job and its own ``_since``.

Every entry is written with :class:`~loaders.warehouse.pipeline.StateUpdate`, so it is
committed in the same dlt load as the rows it stands for: the job is committed right after
the kick-off (a load with no rows), a file is marked finished in the load that merges its
rows, and ``since`` moves, and the job is dropped, only in the load that merges the last file.
A crash can therefore repeat work (a file whose load did not commit is read again; the
version filter makes that a no-op) but never skip it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from loaders.bulk.config import BulkSourceConfig
from loaders.warehouse.pipeline import StateUpdate

STATE_ROOT = "bulk"


def export_key(config: BulkSourceConfig, types: tuple[str, ...]) -> str:
    """The name of what an export covers: scope, types, and a hash of any narrowing options.

    Two runs with the same key continue one job and share one ``_since``. The layout options
    (``organizeOutputBy``, partial manifests) do not change what is exported, so not the key.
    """
    key = f"{config.scope}|{','.join(sorted(types)) or '*'}"
    narrowing = [
        *config.type_filters,
        *(f"_elements={element}" for element in config.elements),
        *config.patients,
    ]
    if narrowing:
        key = f"{key}|{hashlib.sha256(chr(10).join(narrowing).encode()).hexdigest()[:10]}"
    return key


def job_folder(status_url: str) -> str:
    """A folder name for a job's downloads (a hash: the URL is not shown anywhere)."""
    return hashlib.sha256(status_url.encode()).hexdigest()[:16]


@dataclass(slots=True)
class JobCheckpoint:
    """A job in flight.

    Attributes:
        status_url: Where to poll (held in state only; never logged).
        kicked_off_at: When the server accepted it (FHIR instant).
        since: The ``_since`` it was asked with (None: everything).
        finished: Files merged so far: file key -> resources read from it.
    """

    status_url: str = field(repr=False)
    kicked_off_at: str
    since: str | None
    finished: dict[str, int] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        """The job's download folder name."""
        return job_folder(self.status_url)

    def to_state(self) -> dict[str, Any]:
        """The JSON stored in dlt state."""
        return {
            "status_url": self.status_url,
            "kicked_off_at": self.kicked_off_at,
            "since": self.since,
            "finished": dict(self.finished),
        }

    @classmethod
    def from_state(cls, value: Any) -> JobCheckpoint | None:
        """The checkpoint stored in state, or None when there is none (or it is unreadable)."""
        if not isinstance(value, dict) or not isinstance(value.get("status_url"), str):
            return None
        finished = value.get("finished")
        return cls(
            status_url=value["status_url"],
            kicked_off_at=str(value.get("kicked_off_at") or ""),
            since=value.get("since") if isinstance(value.get("since"), str) else None,
            finished={
                str(key): int(count)
                for key, count in (finished.items() if isinstance(finished, dict) else [])
                if isinstance(count, int)
            },
        )


@dataclass(frozen=True, slots=True)
class BulkState:
    """The ``bulk`` part of the raw resource's state."""

    since: dict[str, str]
    jobs: dict[str, JobCheckpoint]
    last: dict[str, Any]

    @classmethod
    def from_state(cls, raw_state: dict[str, Any]) -> BulkState:
        """Read it from the raw resource's state (see :func:`read_raw_state`)."""
        root = raw_state.get(STATE_ROOT) or {}
        jobs = {}
        for key, value in (root.get("jobs") or {}).items():
            job = JobCheckpoint.from_state(value)
            if job is not None:
                jobs[key] = job
        since = {k: v for k, v in (root.get("since") or {}).items() if isinstance(v, str)}
        return cls(since=since, jobs=jobs, last=dict(root.get("last") or {}))


def job_started(key: str, job: JobCheckpoint) -> StateUpdate:
    """Record a job right after its kick-off (committed in a load with no rows)."""
    return StateUpdate((STATE_ROOT, "jobs", key), job.to_state())


def file_finished(key: str, file_key: str, resources: int) -> StateUpdate:
    """Mark one file merged (yielded after its rows, so committed with them)."""
    return StateUpdate((STATE_ROOT, "jobs", key, "finished", file_key), resources)


def job_dropped(key: str) -> StateUpdate:
    """Forget the job (cancelled, failed or gone); ``since`` stays where it was."""
    return StateUpdate((STATE_ROOT, "jobs", key), None)


def export_merged(key: str, transaction_time: str, summary: dict[str, Any]) -> list[StateUpdate]:
    """Move ``since`` to the manifest's ``transactionTime`` and drop the job, in the last load."""
    return [
        StateUpdate((STATE_ROOT, "since", key), transaction_time),
        StateUpdate((STATE_ROOT, "last", key), summary),
        job_dropped(key),
    ]
