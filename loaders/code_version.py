"""Which code ran: the package version and, when known, the git commit (for ``load_runs``).

The version comes from the installed distribution's metadata. The commit is read with
``git rev-parse HEAD`` only when the package itself sits in a git checkout (the ``.git`` of the
folder above ``loaders/``), with a short timeout; otherwise from ``GITHUB_SHA`` (set by GitHub
Actions); otherwise it is unknown (None). Both are computed once per process.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

logger = logging.getLogger(__name__)

DISTRIBUTION = "fhir-elt"
GIT_TIMEOUT_SECONDS = 2.0
_COMMIT = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


@cache
def package_version() -> str | None:
    """The installed ``fhir-elt`` version, or None when the package is not installed."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return None


@cache
def git_commit() -> str | None:
    """The commit the package runs from (see the module docstring), or None."""
    return commit_of_checkout(Path(__file__).resolve().parent.parent) or _commit_from_env()


def commit_of_checkout(folder: Path) -> str | None:
    """``HEAD`` of the git checkout at ``folder`` (which must hold ``.git``), or None."""
    if not (folder / ".git").exists():
        return None
    try:
        completed = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        logger.debug("git commit unknown: %s", type(error).__name__)
        return None
    commit = completed.stdout.strip()
    return commit if completed.returncode == 0 and _COMMIT.fullmatch(commit) else None


def _commit_from_env() -> str | None:
    commit = os.environ.get("GITHUB_SHA", "").strip().lower()
    return commit if _COMMIT.fullmatch(commit) else None
