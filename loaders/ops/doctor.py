"""``fhir-elt doctor``: is this source ready to load? Each check passes or says how to fix it.

Checks, in order (a failed check skips the ones that depend on it):

1. **secrets**: the secrets the source's auth kind needs are set (only presence is checked and
   shown: never a value, a length or a prefix);
2. **configuration**: ``[sources.fhir_rest.<name>]`` reads and validates;
3. **connectivity**: ``GET [base]/metadata`` answers with a CapabilityStatement;
4. **auth**: a token is issued, and one count search per type is allowed (403 means a scope
   is missing for that type);
5. **search support**: the CapabilityStatement declares the search parameters each type's
   strategy uses (``_lastUpdated`` / the clinical date / ``patient``; ``_sort`` and
   ``_summary`` are warnings: the sync works without them, less efficiently);
6. **warehouse**: the DuckDB file can be opened for writing and the landing zone written;
   with ``--dbt-target snowflake``, the Snowflake profile's environment variables are set.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import dlt
import duckdb
import httpx

from loaders.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ConfigError,
    ExtractError,
    RequestRejected,
)
from loaders.http import FhirHttpClient, RetryPolicy, Timeouts, TokenProvider
from loaders.ops.tables import render_table
from loaders.rest.capabilities import Capabilities, read_capabilities
from loaders.rest.config import AuthKind, RestSourceConfig, Strategy, load_rest_source_config
from loaders.rest.connect import token_provider
from loaders.settings import LoadSettings


class Outcome(StrEnum):
    """How a check ended."""

    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: what was checked, how it ended, what was seen, and the fix."""

    name: str
    outcome: Outcome
    detail: str
    fix: str = ""


@dataclass(slots=True)
class Diagnosis:
    """Every check of one source."""

    source: str
    checks: list[Check] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """No check failed (warnings allowed)."""
        return all(check.outcome is not Outcome.FAIL for check in self.checks)

    def add(self, name: str, outcome: Outcome, detail: str, fix: str = "") -> Check:
        check = Check(name, outcome, detail, fix)
        self.checks.append(check)
        return check


_SECRETS = {
    AuthKind.STATIC: ("credentials.token",),
    AuthKind.CLIENT_CREDENTIALS: ("credentials.client_secret",),
    AuthKind.SMART_BACKEND: ("credentials.private_key",),
}

_SNOWFLAKE_ENV = (
    "SNOWFLAKE_ACCOUNT",
    "SNOWFLAKE_USER",
    "SNOWFLAKE_ROLE",
    "SNOWFLAKE_WAREHOUSE",
    "SNOWFLAKE_DATABASE",
)


def _env_name(source: str, key: str) -> str:
    return f"SOURCES__FHIR_REST__{source.upper()}__{key.replace('.', '__').upper()}"


def _check_secrets(source: str, diagnosis: Diagnosis) -> bool:
    raw_kind = dlt.config.get(f"sources.fhir_rest.{source}.auth") or "none"
    try:
        kind = AuthKind(str(raw_kind))
    except ValueError:
        diagnosis.add(
            "secrets", Outcome.SKIP, f"unknown auth kind {raw_kind!r} (see configuration)"
        )
        return True
    needed = _SECRETS.get(kind, ())
    if not needed:
        diagnosis.add("secrets", Outcome.OK, f"auth {kind.value}: no secret needed")
        return True
    missing = [key for key in needed if not dlt.secrets.get(f"sources.fhir_rest.{source}.{key}")]
    if missing:
        names = ", ".join(f"sources.fhir_rest.{source}.{key}" for key in missing)
        env = ", ".join(_env_name(source, key) for key in missing)
        diagnosis.add(
            "secrets",
            Outcome.FAIL,
            f"auth {kind.value} needs {names}: not set",
            f"put it under [sources.fhir_rest.{source}.credentials] in .dlt/secrets.toml, or "
            f"set {env} (in CI: a repository or environment secret mapped to that variable)",
        )
        return False
    diagnosis.add("secrets", Outcome.OK, f"auth {kind.value}: {', '.join(needed)} set (not shown)")
    return True


def _check_configuration(
    source: str, diagnosis: Diagnosis, secrets_ok: bool
) -> RestSourceConfig | None:
    try:
        config = load_rest_source_config(source)
    except ConfigError as error:
        if not secrets_ok and "needs" in str(error):
            diagnosis.add("configuration", Outcome.SKIP, "needs the secrets above first")
            return None
        diagnosis.add(
            "configuration",
            Outcome.FAIL,
            str(error),
            f"edit [sources.fhir_rest.{source}] in .dlt/config.toml or set the matching "
            f"SOURCES__FHIR_REST__{source.upper()}__<KEY> variable (see .dlt/config.toml)",
        )
        return None
    diagnosis.add(
        "configuration",
        Outcome.OK,
        f"{config.base_url}; auth {config.auth.kind.value}; "
        f"{len(config.resource_types)} types in {len(config.groups)} group(s)",
    )
    return config


def _client(config: RestSourceConfig, provider: TokenProvider | None = None) -> FhirHttpClient:
    return FhirHttpClient(
        config.base_url,
        provider,
        retry=RetryPolicy(max_attempts=2, max_elapsed_seconds=30, base_delay=0.2, max_delay=1),
        timeouts=Timeouts(
            connect=min(config.connect_timeout, 10), read=min(config.read_timeout, 30)
        ),
        max_concurrency=1,
    )


def _check_connectivity(config: RestSourceConfig, diagnosis: Diagnosis) -> Capabilities | None:
    try:
        with _client(config) as client:
            capabilities = read_capabilities(client)
    except (ExtractError, httpx.HTTPError) as error:
        diagnosis.add(
            "connectivity",
            Outcome.FAIL,
            f"GET [base]/metadata failed: {type(error).__name__}: {error}",
            f"check sources.fhir_rest.{config.name}.base_url (the FHIR base, ending before "
            "/metadata), DNS, the VPN or proxy, and that the server is up",
        )
        return None
    if not capabilities.search_params:
        diagnosis.add(
            "connectivity",
            Outcome.WARN,
            "the server answered, but its CapabilityStatement lists no resource types",
            "check that base_url is the FHIR R4 base (not the server root or an R2/STU3 base)",
        )
        return capabilities
    diagnosis.add(
        "connectivity",
        Outcome.OK,
        f"CapabilityStatement lists {len(capabilities.search_params)} resource types",
    )
    return capabilities


def _auth_fix(config: RestSourceConfig) -> str:
    kind = config.auth.kind
    if kind is AuthKind.SMART_BACKEND:
        return (
            "the token endpoint refused the client assertion: check client_id, kid and "
            "algorithm, and that the public key of credentials.private_key is the one "
            "registered with the EHR (its JWKS)"
        )
    if kind is AuthKind.CLIENT_CREDENTIALS:
        return "check client_id and credentials.client_secret with the EHR's app registration"
    if kind is AuthKind.STATIC:
        return "the static token is refused or expired: issue a new credentials.token"
    return f"the server requires authentication: set sources.fhir_rest.{config.name}.auth"


def _check_auth(config: RestSourceConfig, types: tuple[str, ...], diagnosis: Diagnosis) -> bool:
    provider: TokenProvider | None = None
    try:
        provider = token_provider(config.auth)
        with _client(config, provider) as client:
            forbidden = []
            for resource_type in types:
                try:
                    client.get_json(
                        resource_type, {"_summary": "count"}, resource_type=resource_type
                    )
                except AuthorizationError:
                    forbidden.append(resource_type)
                except RequestRejected:
                    pass  # reachable and authorised; the server refuses _summary=count
    except AuthenticationError as error:
        diagnosis.add("auth", Outcome.FAIL, str(error), _auth_fix(config))
        return False
    except (ConfigError, ExtractError, httpx.HTTPError) as error:
        diagnosis.add(
            "auth",
            Outcome.FAIL,
            f"{type(error).__name__}: {error}",
            "check token_url and that the token endpoint is reachable from here",
        )
        return False
    finally:
        close = getattr(provider, "close", None)
        if close is not None:
            close()
    if forbidden:
        scopes = ", ".join(f"system/{t}.read" for t in forbidden)
        diagnosis.add(
            "auth",
            Outcome.FAIL,
            f"token issued, but access is forbidden (403) for {', '.join(forbidden)}",
            f'grant the client {scopes} (scope = "{config.auth.scope}" now), or remove '
            "those types from the source's groups",
        )
        return False
    what = "no auth configured" if config.auth.kind is AuthKind.NONE else "token issued"
    diagnosis.add("auth", Outcome.OK, f"{what}; a search of each of {len(types)} types allowed")
    return True


def _check_search_support(
    config: RestSourceConfig,
    types: tuple[str, ...],
    capabilities: Capabilities,
    diagnosis: Diagnosis,
) -> None:
    failures: list[str] = []
    fixes: list[str] = []
    warnings: list[str] = []
    for resource_type in types:
        type_config = config.type_config(resource_type)
        strategy = type_config.strategy
        key = f"sources.fhir_rest.{config.name}.types.{resource_type}"
        if capabilities.search_params and not capabilities.declares(resource_type):
            warnings.append(f"{resource_type}: not listed in the CapabilityStatement")
            continue
        if strategy is Strategy.LAST_UPDATED:
            if not capabilities.supports_last_updated(resource_type):
                failures.append(f"{resource_type}: no _lastUpdated search")
                fixes.append(
                    f"{key}.strategy = clinical_date (with date_param), full_sweep or per_patient"
                )
            elif not capabilities.supports_sort(resource_type):
                warnings.append(
                    f"{resource_type}: no _sort (pages come unsorted; windows are still "
                    "verified by count)"
                )
        elif strategy is Strategy.CLINICAL_DATE and not capabilities.supports(
            resource_type, type_config.date_param
        ):
            failures.append(f"{resource_type}: no {type_config.date_param} search")
            fixes.append(f"{key}.date_param = a date parameter the server declares")
        elif strategy is Strategy.PER_PATIENT and not capabilities.supports(
            resource_type, "patient"
        ):
            failures.append(f"{resource_type}: no patient search")
            fixes.append(f"{key}.strategy = full_sweep")
        if (
            config.verify_windows
            and strategy is Strategy.LAST_UPDATED
            and capabilities.search_params.get(resource_type)
            and not capabilities.supports(resource_type, "_summary")
        ):
            warnings.append(f"{resource_type}: _summary not declared (window counts may fail)")
    if failures:
        diagnosis.add("search support", Outcome.FAIL, "; ".join(failures), "; ".join(fixes))
    if warnings:
        diagnosis.add(
            "search support",
            Outcome.WARN,
            "; ".join(warnings),
            "nothing required; _sort lets windows page in order",
        )
    if not failures and not warnings:
        diagnosis.add(
            "search support",
            Outcome.OK,
            f"every strategy's search parameters are declared for {len(types)} types",
        )


def _check_warehouse(settings: LoadSettings, diagnosis: Diagnosis, dbt_target: str | None) -> None:
    path = settings.duckdb_path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(path)) as connection:
            connection.execute("create temporary table fhir_elt_doctor as select 1 as probe")
    except (OSError, duckdb.Error) as error:
        diagnosis.add(
            "warehouse",
            Outcome.FAIL,
            f"cannot open {path} for writing ({type(error).__name__})",
            "set FHIR_ELT_DUCKDB_PATH (or --warehouse) to a file in a writable directory, and "
            "make sure no other process (a running load, a DuckDB shell) holds it",
        )
    else:
        diagnosis.add("warehouse", Outcome.OK, f"{path} opens for writing")
    landing = settings.landing_root
    probe = landing / f".doctor-{uuid.uuid4().hex}"
    try:
        landing.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        diagnosis.add(
            "landing zone",
            Outcome.FAIL,
            f"cannot write under {landing} ({type(error).__name__})",
            "set FHIR_ELT_LANDING_ROOT (or --landing) to a writable directory",
        )
    else:
        diagnosis.add("landing zone", Outcome.OK, f"{landing} is writable")
    if dbt_target == "snowflake":
        missing = [name for name in _SNOWFLAKE_ENV if not os.environ.get(name)]
        if not (
            os.environ.get("SNOWFLAKE_PASSWORD") or os.environ.get("SNOWFLAKE_PRIVATE_KEY_PATH")
        ):
            missing.append("SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH")
        if missing:
            diagnosis.add(
                "dbt snowflake target",
                Outcome.FAIL,
                f"not set: {', '.join(missing)}",
                "set them (CI: environment secrets); then `dbt debug --target snowflake` "
                "tests the connection",
            )
        else:
            diagnosis.add(
                "dbt snowflake target",
                Outcome.OK,
                "the profile's environment variables are set (values not shown); "
                "`dbt debug --target snowflake` tests the connection",
            )


def diagnose(
    source: str, settings: LoadSettings, *, types: str | None = None, dbt_target: str | None = None
) -> Diagnosis:
    """Run every check of ``source`` (configuration read the dlt way)."""
    diagnosis = Diagnosis(source)
    secrets_ok = _check_secrets(source, diagnosis)
    config = _check_configuration(source, diagnosis, secrets_ok)
    if config is not None:
        chosen = config.resource_types
        if types:
            chosen = tuple(t.strip() for t in types.split(",") if t.strip())
        capabilities = _check_connectivity(config, diagnosis)
        if capabilities is None:
            diagnosis.add("auth", Outcome.SKIP, "needs connectivity")
            diagnosis.add("search support", Outcome.SKIP, "needs connectivity")
        else:
            _check_auth(config, chosen, diagnosis)
            _check_search_support(config, chosen, capabilities, diagnosis)
    _check_warehouse(settings, diagnosis, dbt_target)
    return diagnosis


def format_diagnosis(diagnosis: Diagnosis) -> str:
    """The checks as a table, then one ``fix:`` line per failure or warning."""
    rows = [(check.outcome.value, check.name, check.detail) for check in diagnosis.checks]
    lines = [
        f"fhir-elt doctor: source {diagnosis.source}",
        render_table(("", "check", "detail"), rows),
    ]
    fixes = [
        check
        for check in diagnosis.checks
        if check.fix and check.outcome in (Outcome.FAIL, Outcome.WARN)
    ]
    if fixes:
        lines.append("")
        lines.extend(f"  fix ({check.name}): {check.fix}" for check in fixes)
    failed = sum(check.outcome is Outcome.FAIL for check in diagnosis.checks)
    lines.append("")
    lines.append("ready to load" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines)


def settings_for(duckdb_path: Path | None, landing_root: Path | None) -> LoadSettings:
    """The load settings doctor checks (same resolution as the load commands)."""
    return LoadSettings.resolve(duckdb_path=duckdb_path, landing_root=landing_root)
