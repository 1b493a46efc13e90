"""Values of dlt's configuration, read the way ``dlt.config.get`` reads them, without dlt.

Importing dlt takes about 0.35 s, and ``fhir-elt load files`` on DuckDB needs dlt for nothing
but a handful of ``[fhir_elt]`` values: that was a quarter of a load with nothing to do (``make
bench`` step c). The places and their order are dlt's: the environment first
(``FHIR_ELT__PAGE_SIZE`` for ``fhir_elt.page_size``), then ``secrets.toml``, then
``config.toml``; each TOML file in the project's settings folder (``DLT_PROJECT_DIR`` or the
working directory, folder ``DLT_CONFIG_FOLDER`` or ``.dlt``) before the same file in dlt's
global folder. A value from the environment is text; one from TOML keeps its TOML type (a
table is a dict). When both folders hold a table, the project's is taken whole (dlt merges
the two key by key).
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from loaders.exceptions import ConfigError

_FILES = ("secrets.toml", "config.toml")


def config_value(key: str) -> Any:
    """The value of a dotted ``key`` such as ``fhir_elt.page_size``; None when not set.

    Raises:
        ConfigError: A TOML file that would be read is not valid TOML.
    """
    path = key.split(".")
    from_environment = os.environ.get("__".join(path).upper())
    if from_environment is not None:
        return from_environment
    for name in _FILES:
        for folder in (settings_dir(), global_settings_dir()):
            value: Any = _toml(folder / name)
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                return value
    return None


def settings_dir() -> Path:
    """The project's settings folder, as dlt finds it."""
    project = os.environ.get("DLT_PROJECT_DIR", ".")
    return Path(project) / os.environ.get("DLT_CONFIG_FOLDER", ".dlt")


def global_settings_dir() -> Path:
    """dlt's global folder (``dlt.common.runtime.run_context.global_dir``)."""
    folder = os.environ.get("DLT_CONFIG_FOLDER", ".dlt")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/dlt")
    home = os.path.expanduser("~")
    if not os.access(home, os.W_OK):
        return Path(tempfile.gettempdir()) / "dlt"
    if "XDG_DATA_HOME" in os.environ and not os.path.isdir(os.path.join(home, folder)):
        return Path(os.environ["XDG_DATA_HOME"]) / "dlt"
    return Path(home) / folder


def _toml(path: Path) -> dict[str, Any]:
    try:
        stat = path.stat()
    except OSError:
        return {}
    return _parsed(path.resolve(), stat.st_mtime_ns, stat.st_size)


@cache
def _parsed(path: Path, _mtime_ns: int, _size: int) -> dict[str, Any]:
    """A TOML file's contents, parsed once per version of the file."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    except OSError:
        return {}
