"""A dlt load package left by a killed run never wedges the next run.

dlt's normalize moves a package to ``normalized/`` and then deletes its extracted copy; a
``kill -9`` between the two leaves both, and finishing them fails ("Directory not empty").
Seen once in CI: a Bulk export killed while downloading, then resumed. The next writing run
aborts such packages (dlt rewinds its local state) and redoes their work.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loaders.runs import merge
from loaders.settings import LoadSettings
from loaders.warehouse.pipeline import (
    StateUpdate,
    discard_interrupted_loads,
    make_pipeline,
    raw_resources,
    read_raw_state,
)


def _cursor(value: str) -> StateUpdate:
    return StateUpdate(("rest", "cursors", "Patient"), value)


def _commit(settings: LoadSettings, value: str) -> None:
    merge(make_pipeline(settings), settings, lambda _filter: iter([_cursor(value)]))


@pytest.fixture
def settings(tmp_path: Path) -> LoadSettings:
    return LoadSettings(duckdb_path=tmp_path / "w" / "fhir.duckdb", landing_root=tmp_path / "l")


def _leave_the_crash_window(settings: LoadSettings, tmp_path: Path) -> None:
    """A package normalized, with its extracted copy still there (killed in between)."""
    pipeline = make_pipeline(settings)
    pipeline.extract(raw_resources([_cursor("killed")]))
    [package] = list((Path(pipeline.working_dir) / "normalize" / "extracted").iterdir())
    shutil.copytree(package, tmp_path / "copy")
    pipeline.normalize()
    shutil.copytree(tmp_path / "copy", package)
    assert make_pipeline(settings).has_pending_data


def test_the_next_run_discards_a_package_killed_mid_normalize(
    settings: LoadSettings, tmp_path: Path
) -> None:
    _commit(settings, "first")
    _leave_the_crash_window(settings, tmp_path)

    _commit(settings, "next")

    pipeline = make_pipeline(settings)
    assert not pipeline.has_pending_data
    assert read_raw_state(pipeline)["rest"]["cursors"] == {"Patient": "next"}


def test_a_killed_package_is_never_committed_and_a_clean_pipeline_is_left_alone(
    settings: LoadSettings, tmp_path: Path
) -> None:
    _commit(settings, "first")
    assert not discard_interrupted_loads(make_pipeline(settings))
    _leave_the_crash_window(settings, tmp_path)

    assert discard_interrupted_loads(make_pipeline(settings))

    pipeline = make_pipeline(settings)
    assert not pipeline.has_pending_data
    # the killed run's cursor was never loaded: the state is the last committed one
    assert read_raw_state(pipeline)["rest"]["cursors"] == {"Patient": "first"}
