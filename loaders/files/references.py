"""Rewrite ``urn:uuid:`` references inside a Bundle to ``Type/id``.

Transaction Bundles (Synthea, many exports) give each entry a ``fullUrl`` of ``urn:uuid:...``
and point at each other with those URNs. Once the entries are split into one row per resource
the URNs mean nothing, so they are resolved to ``Type/id`` while the Bundle is still whole.
A URN whose target is not in the Bundle is left as it is: it is a dangling reference that the
dbt relationship tests will report, not something the loader should guess at.
"""

from __future__ import annotations

from typing import Any

URN_PREFIX = "urn:uuid:"


def rewrite_references(node: Any, targets: dict[str, str]) -> int:
    """Replace, in place, every ``reference`` string that is a key of ``targets``.

    Args:
        node: A resource (or any part of one): dicts and lists are walked recursively.
        targets: ``fullUrl`` -> ``Type/id`` for every entry of the Bundle.

    Returns:
        How many references were rewritten.
    """
    rewritten = 0
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                if key == "reference" and isinstance(value, str):
                    target = targets.get(value)
                    if target is not None:
                        current[key] = target
                        rewritten += 1
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(current, list):
            stack.extend(item for item in current if isinstance(item, dict | list))
    return rewritten
