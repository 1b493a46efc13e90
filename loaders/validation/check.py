"""Validate resource texts against their ``fhir.resources.R4B`` model (runs in pool workers).

Everything here is importable and picklable by a spawned worker process: :func:`warm` is the
worker's initializer (it imports ``fhir.resources.R4B`` and pydantic once); :func:`invalid_in`
validates one chunk and returns only the positions and findings of invalid resources, never
their content.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache
from typing import Any

import orjson

from loaders.validation.errors import Finding, first_finding

logger = logging.getLogger(__name__)

NO_MODEL = "no_r4b_model"


def warm() -> None:
    """Import the FHIR models' package and pydantic (a worker's initializer)."""
    import fhir.resources.R4B  # noqa: F401
    import pydantic  # noqa: F401


@cache
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError):
        return None


def finding_for(document: Any) -> Finding | None:
    """Why ``document`` (a decoded resource) is not valid R4B; None when it is.

    A resource whose type has no R4B model cannot be validated and is reported as such
    (``no_r4b_model``); loaders only pass types FHIR R4 defines, which all have one.
    """
    from pydantic import ValidationError

    resource_type = document.get("resourceType") if isinstance(document, dict) else None
    model = _model(resource_type) if isinstance(resource_type, str) else None
    if model is None:
        return Finding(str(resource_type) if isinstance(resource_type, str) else "$", NO_MODEL)
    try:
        model.model_validate(document)
    except ValidationError as error:
        # errors(include_input=False, include_context=False): pydantic never builds the
        # value-bearing parts; only loc and type are read from what is left.
        return first_finding(
            resource_type,
            error.errors(include_url=False, include_input=False, include_context=False),
        )
    except (ValueError, TypeError, AttributeError, RecursionError):
        # A model validator that raised outside pydantic's wrapping: no location to give.
        return Finding(resource_type, "model_error")
    return None


def invalid_in(texts: Sequence[bytes]) -> list[tuple[int, str, str]]:
    """``(position, json path, code)`` of each invalid resource among ``texts`` (JSON bytes)."""
    invalid: list[tuple[int, str, str]] = []
    for position, text in enumerate(texts):
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            invalid.append((position, "$", "invalid_json"))
            continue
        finding = finding_for(document)
        if finding is not None:
            invalid.append((position, finding.json_path, finding.code))
    return invalid
