"""Package attributes imported on first use (PEP 562), so ``fhir-elt`` starts fast.

``fhir-elt`` builds every subcommand's parser at start-up, which imports each subcommand's
package; a package ``__init__`` that re-exported its modules eagerly made every command pay
for every other command's dependencies (``replay`` alone pulled in reconcile, REST and httpx,
~0.2 s). A package lists where each public name lives and sets
``__getattr__ = lazy_names(__name__, homes)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``homes[name]`` when ``name`` is first read."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home), name)

    return __getattr__
