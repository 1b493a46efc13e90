"""What a drift finding does to a load: ``fail``, ``warn`` or ``accept``, per source and path.

Rules map path globs (``fnmatch``, matched against the full path such as
``Patient.name.family`` or ``Observation.*``) to an action; the first matching rule wins. They
come from, in order:

1. ``FHIR_ELT_DRIFT_POLICY``, for every source: ``"Patient.birth_date=accept;Observation.*=warn"``;
2. ``.dlt/config.toml``, per source system::

       [fhir_elt.drift.epic_prod]
       "Patient.birth_date" = "accept"     # a known vendor field: load it, record nothing
       "Observation.component.*" = "warn"  # load, record in raw_fhir.schema_drift

   (or as JSON in ``FHIR_ELT__DRIFT__EPIC_PROD``, as dlt maps config keys to variables).

A path no rule matches gets the default (:func:`default_action`): ``fail`` where the dbt
staging models read (:mod:`loaders.drift.staging_paths`), ``warn`` elsewhere.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

import orjson

from loaders.dlt_config import config_value
from loaders.drift.detector import DriftObservation
from loaders.drift.staging_paths import staging_read_paths
from loaders.exceptions import ConfigError

POLICY_ENV_VAR = "FHIR_ELT_DRIFT_POLICY"


class DriftAction(StrEnum):
    """What a finding does: stop the run before the merge, load and record, or load silently."""

    FAIL = "fail"
    WARN = "warn"
    ACCEPT = "accept"


@dataclass(frozen=True, slots=True)
class DriftRule:
    """Paths matching ``pattern`` (an ``fnmatch`` glob on the full path) get ``action``."""

    pattern: str
    action: DriftAction


def _is_under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor + ".")


def default_action(resource_type: str, json_path: str, *, unknown_element: bool) -> DriftAction:
    """``fail`` where drift would change what the staging models read, ``warn`` elsewhere.

    - A kind mismatch fails when the path is a staging-read path, inside one, or contains one
      (``Patient.name`` turned into an object while ``Patient.name.family`` is read).
    - An unknown element fails when it sits directly in an object the staging models read
      from: at the top of a type that has a staging model, or beside a read element
      (``Patient.name.family_name`` next to ``Patient.name.family``): it may be a read element
      renamed.
    """
    reads = staging_read_paths(resource_type)
    if not reads:
        return DriftAction.WARN
    if unknown_element:
        parent = json_path.rpartition(".")[0]
        if parent == resource_type or any(_is_under(read, parent) for read in reads):
            return DriftAction.FAIL
        return DriftAction.WARN
    if any(_is_under(read, json_path) or _is_under(json_path, read) for read in reads):
        return DriftAction.FAIL
    return DriftAction.WARN


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    """The drift rules of one source system.

    Attributes:
        source_system: The source the rules are for.
        rules: Glob rules, first match wins; unmatched paths get :func:`default_action`.
    """

    source_system: str
    rules: tuple[DriftRule, ...] = ()

    def action_for(self, observation: DriftObservation) -> DriftAction:
        """The action for one finding."""
        for rule in self.rules:
            if fnmatchcase(observation.json_path, rule.pattern):
                return rule.action
        return default_action(
            observation.resource_type,
            observation.json_path,
            unknown_element=observation.is_unknown_element,
        )


def _action(value: Any, where: str) -> DriftAction:
    try:
        return DriftAction(str(value).strip().lower())
    except ValueError:
        raise ConfigError(
            f"{where}: drift action must be fail, warn or accept, got {str(value)[:40]!r}"
        ) from None


def parse_rules(text: str, where: str = POLICY_ENV_VAR) -> tuple[DriftRule, ...]:
    """Rules from ``"glob=action;glob=action"`` (commas also separate rules)."""
    rules = []
    for item in text.replace(",", ";").split(";"):
        if not item.strip():
            continue
        pattern, sep, action = item.rpartition("=")
        if not sep or not pattern.strip():
            raise ConfigError(f"{where}: expected glob=action, got {item.strip()[:60]!r}")
        rules.append(DriftRule(pattern.strip(), _action(action, where)))
    return tuple(rules)


def load_drift_policy(source_system: str) -> DriftPolicy:
    """The policy of a source system from the environment and ``[fhir_elt.drift.<source>]``.

    Raises:
        ConfigError: A rule is malformed or names an action other than fail, warn, accept.
    """
    rules = list(parse_rules(os.environ.get(POLICY_ENV_VAR, "")))
    configured = config_value(f"fhir_elt.drift.{source_system}")
    if isinstance(configured, str):  # from the environment: FHIR_ELT__DRIFT__<SOURCE>='{...}'
        with contextlib.suppress(orjson.JSONDecodeError):
            configured = orjson.loads(configured)
    if configured is not None:
        where = f"[fhir_elt.drift.{source_system}]"
        if not isinstance(configured, dict):
            raise ConfigError(f"{where} must be a table of path glob = action")
        rules.extend(
            DriftRule(str(pattern), _action(action, where))
            for pattern, action in configured.items()
        )
    return DriftPolicy(source_system, tuple(rules))
