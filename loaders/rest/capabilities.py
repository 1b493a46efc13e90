"""What the server says it can do (its CapabilityStatement), and the server's clock.

Read once per run from ``GET [base]/metadata``. The sync asks it whether a type can be searched
by ``_lastUpdated`` (Epic, for one, does not support it for most types) and sorted by it, and
takes the response's ``Date`` as "now": window ends come from the server's clock, never the
client's, so a skewed runner clock cannot open a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loaders.rest.search import JsonGetter


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Search parameters per resource type, and the server's time when it answered.

    Attributes:
        search_params: Per type, the names of its declared search parameters.
        common_params: Parameters declared for every type (``rest.searchParam``).
        server_now: The ``Date`` of the metadata response (UTC), or the client's clock.
    """

    search_params: dict[str, frozenset[str]] = field(default_factory=dict)
    common_params: frozenset[str] = frozenset()
    server_now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def declares(self, resource_type: str) -> bool:
        """Whether the statement lists the type at all."""
        return resource_type in self.search_params

    def supports(self, resource_type: str, parameter: str) -> bool:
        """Whether ``parameter`` is declared for the type (or for every type)."""
        if parameter in self.common_params:
            return True
        return parameter in self.search_params.get(resource_type, frozenset())

    def supports_last_updated(self, resource_type: str) -> bool:
        """``_lastUpdated`` search; assumed when the type is declared without search params."""
        declared = self.search_params.get(resource_type)
        if not declared:
            return True
        return self.supports(resource_type, "_lastUpdated")

    def supports_sort(self, resource_type: str) -> bool:
        """``_sort`` declared for the type or server-wide."""
        return self.supports(resource_type, "_sort")


def parse_capabilities(statement: Any, server_now: datetime) -> Capabilities:
    """Read search parameters out of a CapabilityStatement (R4)."""
    search_params: dict[str, frozenset[str]] = {}
    common: set[str] = set()
    if isinstance(statement, dict):
        for rest in statement.get("rest") or []:
            if not isinstance(rest, dict) or rest.get("mode", "server") != "server":
                continue
            common.update(_names(rest.get("searchParam")))
            for resource in rest.get("resource") or []:
                if isinstance(resource, dict) and isinstance(resource.get("type"), str):
                    search_params[resource["type"]] = frozenset(_names(resource.get("searchParam")))
    return Capabilities(search_params, frozenset(common), server_now)


def _names(params: Any) -> set[str]:
    return {
        param["name"]
        for param in params or []
        if isinstance(param, dict) and isinstance(param.get("name"), str)
    }


def read_capabilities(client: JsonGetter) -> Capabilities:
    """Fetch and read ``[base]/metadata``."""
    response = client.get_json("metadata", None, resource_type=None)
    return parse_capabilities(response.body, response.server_date or datetime.now(UTC))
