"""Start a Bulk Data export: build the kick-off request and read the status URL it answers with.

``GET [base]/$export``, ``[base]/Patient/$export`` or ``[base]/Group/[id]/$export`` with
``Accept: application/fhir+json`` and ``Prefer: respond-async``; parameters ``_outputFormat``,
``_since``, ``_type``, ``_typeFilter`` (repeated: a filter may hold commas), ``_elements``,
``allowPartialManifests`` and ``organizeOutputBy``. ``patient`` exists only in a POST
``Parameters`` body, so a source that names patients kicks off with POST. The server answers
202 with the status URL in ``Content-Location``; errors are 4xx/5xx with an OperationOutcome
(the client raises them with their issue codes, never the diagnostics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from loaders.bulk.config import BulkSourceConfig, ExportLevel
from loaders.exceptions import MalformedResponseError
from loaders.http import FhirHttpClient
from loaders.http.client import utc_now

RESPOND_ASYNC = {"Prefer": "respond-async"}


@dataclass(frozen=True, slots=True)
class KickoffRequest:
    """What the kick-off sends.

    Attributes:
        method: ``GET`` or ``POST``.
        path: ``$export``, ``Patient/$export`` or ``Group/<id>/$export``.
        params: Query parameters (GET).
        body: A ``Parameters`` resource (POST).
    """

    method: str
    path: str
    params: dict[str, str | list[str]] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class KickedOff:
    """An export the server accepted.

    Attributes:
        status_url: Where to poll (absolute).
        kicked_off_at: When the server accepted it (its ``Date``, else the local clock).
        request_id: The ``X-Request-Id`` of the kick-off.
    """

    status_url: str = field(repr=False)
    kicked_off_at: datetime
    request_id: str


def export_path(config: BulkSourceConfig) -> str:
    """The operation's path relative to the base URL."""
    if config.level is ExportLevel.GROUP:
        return f"Group/{config.group_id}/$export"
    if config.level is ExportLevel.PATIENT:
        return "Patient/$export"
    return "$export"


def build_kickoff(
    config: BulkSourceConfig, since: str | None, types: tuple[str, ...]
) -> KickoffRequest:
    """The kick-off request for ``config``, from ``since`` (exclusive), for ``types``.

    Args:
        config: The source.
        since: ``_since`` (a FHIR instant), or None for everything.
        types: ``_type``; empty for every type the server exports.
    """
    path = export_path(config)
    pairs: list[tuple[str, str]] = [("_outputFormat", config.output_format)]
    if since:
        pairs.append(("_since", since))
    if types:
        pairs.append(("_type", ",".join(types)))
    pairs.extend(("_typeFilter", value) for value in config.type_filters)
    if config.elements:
        pairs.append(("_elements", ",".join(config.elements)))
    if config.allow_partial_manifests:
        pairs.append(("allowPartialManifests", "true"))
    if config.organize_output_by:
        pairs.append(("organizeOutputBy", config.organize_output_by))
    if config.kickoff_method == "get" and not config.patients:
        params: dict[str, str | list[str]] = {}
        for name, value in pairs:
            existing = params.get(name)
            if existing is None:
                params[name] = value
            else:
                params[name] = [*([existing] if isinstance(existing, str) else existing), value]
        return KickoffRequest("GET", path, params)
    parameters: list[dict[str, Any]] = []
    for name, value in pairs:
        if name == "_since":
            parameters.append({"name": name, "valueInstant": value})
        elif name == "allowPartialManifests":
            parameters.append({"name": name, "valueBoolean": True})
        else:
            parameters.append({"name": name, "valueString": value})
    parameters.extend(
        {"name": "patient", "valueReference": {"reference": reference}}
        for reference in config.patients
    )
    return KickoffRequest(
        "POST", path, body={"resourceType": "Parameters", "parameter": parameters}
    )


def kick_off(client: FhirHttpClient, request: KickoffRequest) -> KickedOff:
    """Send the kick-off and return the job's status URL.

    Raises:
        RequestRejected: The server refused the export (its OperationOutcome's issue codes).
        MalformedResponseError: A success without a ``Content-Location``, or another status
            than 202.
        ExtractError: Auth, transport and retry failures, as for any request.
    """
    answer = client.send(
        request.method,
        request.path,
        request.params or None,
        json_body=request.body,
        headers=RESPOND_ASYNC,
    )
    if answer.status != 202:
        raise MalformedResponseError(
            f"Bulk Data kick-off: expected 202 Accepted, the server answered {answer.status}"
        )
    location = answer.headers.get("Content-Location")
    if not location:
        raise MalformedResponseError("Bulk Data kick-off: 202 without a Content-Location header")
    status_url = str(httpx.URL(client.base_url + "/").join(location))
    return KickedOff(status_url, answer.server_date or utc_now(), answer.request_id)
