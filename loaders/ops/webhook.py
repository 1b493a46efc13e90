"""Post alerts and failure notices to a webhook as PHI-free JSON (Slack-compatible).

The payload is rebuilt here from validated fields, never passed through from the warehouse: an
alert kind from a fixed set, a source name matching the config's pattern, a FHIR resource type
FHIR R4 defines, a run id of the loader's shape, and finite numbers. Anything else is replaced
by a placeholder, so even a tampered alert row or a message quoting data cannot carry a name, an
identifier or a URL out. Slack reads ``text`` (and ``blocks``); other receivers can read the
structured ``fhir_elt`` object, which Slack ignores.

The webhook URL is a secret (Slack's embeds a token): it comes from ``--webhook-url``,
``FHIR_ELT_ALERT_WEBHOOK_URL`` or ``fhir_elt.alert_webhook_url`` in ``.dlt/secrets.toml``, and is
never printed or logged (errors name only its host).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dlt
import httpx

from loaders.fhir import is_known_resource_type
from loaders.log_redaction import redact

logger = logging.getLogger(__name__)

ALERT_KINDS = frozenset(
    {
        "no_new_rows",
        "reject_rate_jump",
        "duplicate_rate_jump",
        "freshness_gap",
        "reconciliation_delta",
    }
)
_SOURCE = re.compile(r"[a-z][a-z0-9_]{0,62}")
_RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
_SAFE_TEXT = re.compile(r"[A-Za-z0-9 .,:;()\[\]/_'#=+-]{0,300}")
_UNTYPED = "(untyped)"


@dataclass(frozen=True, slots=True)
class Alert:
    """One open alert, as read from the ``open_alerts`` model."""

    alert_kind: str
    source_system: str
    resource_type: str
    run_id: str | None
    observed_value: float | None
    threshold: float | None
    message: str = ""


def _kind(value: object) -> str:
    return value if isinstance(value, str) and value in ALERT_KINDS else "(unknown alert)"


def _source(value: object) -> str:
    return value if isinstance(value, str) and _SOURCE.fullmatch(value) else "(invalid source)"


def _type(value: object) -> str:
    if isinstance(value, str) and (value == _UNTYPED or is_known_resource_type(value)):
        return value
    return "(invalid type)"


def _run(value: object) -> str | None:
    return value if isinstance(value, str) and _RUN_ID.fullmatch(value) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return round(float(value), 4) if math.isfinite(value) else None


def _show(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def safe_alert(alert: Alert) -> dict[str, Any]:
    """The alert's fields, each validated (see the module docstring); no free text."""
    return {
        "kind": _kind(alert.alert_kind),
        "source_system": _source(alert.source_system),
        "resource_type": _type(alert.resource_type),
        "run_id": _run(alert.run_id),
        "observed_value": _number(alert.observed_value),
        "threshold": _number(alert.threshold),
    }


_WORDING = {
    "no_new_rows": (
        "{observed} new rows in the latest sync ({threshold} of earlier syncs had some)"
    ),
    "reject_rate_jump": "reject rate jumped to {observed} (baseline {threshold})",
    "duplicate_rate_jump": "duplicate rate jumped to {observed} (baseline {threshold})",
    "freshness_gap": "{observed} h since the last successful sync (SLA {threshold} h)",
    "reconciliation_delta": (
        "{observed} resource(s) still differ from the source (allowed {threshold})"
    ),
}


def describe(fields: Mapping[str, Any]) -> str:
    """One line for one alert, from validated fields only."""
    wording = _WORDING.get(fields["kind"], "{observed} against {threshold}")
    text = wording.format(
        observed=_show(fields["observed_value"]), threshold=_show(fields["threshold"])
    )
    return f"{fields['kind']}: {fields['resource_type']} from {fields['source_system']}: {text}"


def summary_line(alerts: Sequence[Alert]) -> str:
    """The one-line message of a run with open alerts (or none)."""
    if not alerts:
        return "fhir-elt alerts: none open"
    fields = [safe_alert(alert) for alert in alerts]
    shown = "; ".join(f"{f['kind']} {f['resource_type']}@{f['source_system']}" for f in fields[:5])
    more = f"; and {len(fields) - 5} more" if len(fields) > 5 else ""
    return f"fhir-elt alerts: {len(fields)} open: {shown}{more}"


def alerts_payload(
    alerts: Sequence[Alert], context: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A Slack-compatible JSON payload for ``alerts`` (see the module docstring)."""
    fields = [safe_alert(alert) for alert in alerts]
    safe_context = safe_context_fields(context or {})
    where = " ".join(f"{key}={value}" for key, value in safe_context.items())
    text = summary_line(alerts) + (f" ({where})" if where else "")
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
            *(
                {"type": "section", "text": {"type": "plain_text", "text": describe(f)}}
                for f in fields[:20]
            ),
        ],
        "fhir_elt": {"event": "alerts", "alerts": fields, "context": safe_context},
    }


def safe_context_fields(context: Mapping[str, str]) -> dict[str, str]:
    """Context (workflow, run URL, step) kept only when it is short, plain, PHI-free text."""
    kept = {}
    for key, value in context.items():
        if not (isinstance(key, str) and _SOURCE.fullmatch(key)):
            continue
        text = redact(str(value))
        if _SAFE_TEXT.fullmatch(text):
            kept[key] = text
    return kept


def notice_payload(message: str, context: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A failure notice: a fixed-vocabulary message (redacted, plain characters only)."""
    text = redact(message)
    if not _SAFE_TEXT.fullmatch(text):
        text = re.sub(r"[^A-Za-z0-9 .,:;()\[\]/_'#=+-]", "?", text)[:300]
    safe_context = safe_context_fields(context or {})
    where = " ".join(f"{key}={value}" for key, value in safe_context.items())
    full = text + (f" ({where})" if where else "")
    return {"text": full, "fhir_elt": {"event": "notice", "message": text, "context": safe_context}}


def webhook_url(explicit: str | None = None) -> str | None:
    """The webhook URL: the argument, ``FHIR_ELT_ALERT_WEBHOOK_URL``, then dlt secrets."""
    if explicit:
        return explicit
    value = os.environ.get("FHIR_ELT_ALERT_WEBHOOK_URL") or dlt.secrets.get(
        "fhir_elt.alert_webhook_url"
    )
    return str(value) if value else None


def post(
    url: str, payload: Mapping[str, Any], *, attempts: int = 3, timeout: float = 10.0
) -> str | None:
    """POST ``payload`` as JSON; returns None on success, else a description without the URL.

    Transport errors and 5xx/429 answers are retried (1 s, 2 s); nothing is raised.
    """
    host = httpx.URL(url).host or "(no host)"
    problem = "not attempted"
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.post(url, json=dict(payload), timeout=timeout)
        except httpx.HTTPError as error:
            problem = f"{type(error).__name__} posting to {host}"
        else:
            if response.is_success:
                return None
            problem = f"HTTP {response.status_code} from {host}"
            if response.status_code < 500 and response.status_code != 429:
                break
        if attempt < attempts:
            time.sleep(float(attempt))
    logger.warning("webhook post failed: %s", problem)
    return problem
