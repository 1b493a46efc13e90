"""Keep the landing zone (and a DuckDB warehouse) on object storage between ephemeral runs.

A scheduled runner starts empty and is thrown away after the job. What must survive:

- **dlt state** (REST cursors, backfill checkpoints): stored in the warehouse with the rows
  (``_dlt_pipeline_state``) and restored from there at the start of every run
  (``read_raw_state`` calls ``sync_destination``), so nothing to copy for it: on Snowflake it
  survives by itself; with DuckDB it lives in the warehouse file, copied below;
- **the landing zone**: immutable pages and manifests, needed to replay history without the EHR.
  ``push`` uploads the pages the remote does not have yet (never overwriting one: a page that
  exists remotely with another size is an integrity error); ``pull`` downloads them for a replay;
- **a DuckDB warehouse file**, when DuckDB is the warehouse: ``pull`` before the run, ``push``
  after it (whole file; the workflow's concurrency group keeps runs of a source from overlapping).

The remote is any fsspec URL: ``s3://bucket/fhir-elt``, ``gs://...``, ``az://...``,
``file:///mnt/share/fhir-elt`` (s3fs, gcsfs or adlfs must be installed for the cloud ones).
Credentials come the usual way for each (environment, instance roles), never from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import fsspec

from loaders.exceptions import ConfigError, LandingError, LandingIntegrityError

logger = logging.getLogger(__name__)

LANDING_PREFIX = "landing"
WAREHOUSE_PREFIX = "warehouse"


@dataclass(slots=True)
class Transfer:
    """What a push or pull moved."""

    files: int = 0
    bytes: int = 0
    skipped: int = 0

    def describe(self, verb: str) -> str:
        """``pushed 12 files (3.4 MiB), 480 already there``."""
        return (
            f"{verb} {self.files:,} files ({self.bytes / 1_048_576:.1f} MiB), "
            f"{self.skipped:,} already there"
        )


def _filesystem(remote: str) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        fs, root = fsspec.core.url_to_fs(remote)
    except (ImportError, ValueError) as error:
        raise ConfigError(
            f"cannot open remote storage {remote.split('://')[0]}:// ({type(error).__name__}); "
            "install its fsspec driver (s3fs, gcsfs or adlfs)"
        ) from None
    return fs, root.rstrip("/")


def push_landing(landing_root: Path, remote: str) -> Transfer:
    """Upload landing pages and manifests the remote lacks; never overwrite one.

    Raises:
        LandingIntegrityError: A remote page has the same name but another size.
        LandingError: The remote could not be written.
    """
    fs, root = _filesystem(remote)
    transfer = Transfer()
    if not landing_root.exists():
        return transfer
    for path in sorted(p for p in landing_root.rglob("*") if p.is_file()):
        relative = path.relative_to(landing_root).as_posix()
        if relative.startswith(".") or "/." in relative:
            continue  # temporary files of an atomic write in progress
        target = f"{root}/{LANDING_PREFIX}/{relative}"
        size = path.stat().st_size
        try:
            if fs.exists(target):
                if fs.size(target) != size:
                    raise LandingIntegrityError(
                        f"{relative}: the remote copy has another size; landing pages are "
                        "immutable, so one of the two was altered"
                    )
                transfer.skipped += 1
                continue
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(path), target)
        except OSError as error:
            raise LandingError(f"{relative}: upload failed ({type(error).__name__})") from None
        transfer.files += 1
        transfer.bytes += size
    return transfer


def pull_landing(remote: str, landing_root: Path, prefix: str = "") -> Transfer:
    """Download remote landing files (under ``prefix``, e.g. a source name) missing locally."""
    fs, root = _filesystem(remote)
    base = f"{root}/{LANDING_PREFIX}"
    start = f"{base}/{prefix.strip('/')}" if prefix else base
    transfer = Transfer()
    if not fs.exists(start):
        return transfer
    for remote_path in sorted(fs.find(start)):
        relative = remote_path[len(base) :].lstrip("/")
        local = landing_root / relative
        if local.exists():
            transfer.skipped += 1
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            fs.get_file(remote_path, str(local))
        except OSError as error:
            raise LandingError(f"{relative}: download failed ({type(error).__name__})") from None
        transfer.files += 1
        transfer.bytes += local.stat().st_size
    return transfer


def push_warehouse(duckdb_path: Path, remote: str) -> Transfer:
    """Upload the DuckDB warehouse file (replacing the remote copy)."""
    fs, root = _filesystem(remote)
    if not duckdb_path.exists():
        raise ConfigError(f"no warehouse file at {duckdb_path} to push")
    target = f"{root}/{WAREHOUSE_PREFIX}/{duckdb_path.name}"
    fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
    partial = f"{target}.partial"
    fs.put_file(str(duckdb_path), partial)
    fs.mv(partial, target)
    return Transfer(files=1, bytes=duckdb_path.stat().st_size)


def pull_warehouse(remote: str, duckdb_path: Path) -> Transfer:
    """Download the DuckDB warehouse file if the remote has one (a first run has none)."""
    fs, root = _filesystem(remote)
    source = f"{root}/{WAREHOUSE_PREFIX}/{duckdb_path.name}"
    if not fs.exists(source):
        logger.info("no remote warehouse yet: starting with an empty one")
        return Transfer()
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    partial = duckdb_path.with_name(duckdb_path.name + ".partial")
    fs.get_file(source, str(partial))
    partial.replace(duckdb_path)
    return Transfer(files=1, bytes=duckdb_path.stat().st_size)
