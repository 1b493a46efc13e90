"""Fault scenarios of REST extraction (``load rest`` and ``backfill``) against the test server.

Each scenario starts a server over the synthetic data (~920 resources) with one fault, runs
fhir-elt in-process on a fresh work dir until it is done (a failing run is followed by the
same command, as the next scheduled run would be), and compares the warehouse with the
server's truth. Setups follow ``tests/integration/test_rest_extraction.py`` and
``test_rest_auth_and_backfill.py``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from loaders.rest.config import AuthConfig, AuthKind
from tests.fhir_server import RegisteredClient, Scenario, ServerAuth, jwk_set, make_rsa_key
from tests.fhir_server.store import Resource
from tests.integration.rest_support import SOURCE, rest_config
from tests.reliability.matrix import FaultOutcome
from tests.reliability.scenario_support import (
    SUBSET,
    rest_run,
    retries,
    start_server,
    synthetic_resources,
    truth_of,
    verdict,
    work_settings,
)

SINCE = datetime(1900, 1, 1, tzinfo=UTC)
CLIENT = "fhir-elt-reliability"
# Window ends come from the server's Date header (whole seconds): a change stamped in the
# second a run starts in belongs to the next run, so a run after a change waits this long.
NEXT_SECOND = 1.1


def storm_of_429(work_dir: Path) -> FaultOutcome:
    """A 429 storm: the first 6 data requests and then 30% of all get 429 (``Retry-After: 0``).

    Every request is retried after the server's ``Retry-After``; nothing may be lost.
    """
    settings = work_settings(work_dir)
    with start_server(
        scenario=Scenario(seed=11, fraction_429=0.3, retry_after_seconds=0)
    ) as server:
        server.scenario.burst_429(6)
        run = rest_run(settings, rest_config(server.base_url, page_size=25))
        sent = server.stats.sent_429
        detail = f"{sent} x 429 sent, {retries(run)} retries"
        return verdict(
            "429 storm", [run], server.truth(), settings, SOURCE, detail, fault_seen=sent > 6
        )


def burst_of_5xx(work_dir: Path) -> FaultOutcome:
    """20 consecutive 502/503s: longer than one request's 8 attempts, so the first run fails
    the types it was pulling (their cursors stay), and the next run catches up."""
    settings = work_settings(work_dir)
    with start_server(scenario=Scenario(retry_after_seconds=0)) as server:
        server.scenario.burst_5xx(10, status=502)
        server.scenario.burst_5xx(10, status=503)
        config = rest_config(server.base_url, concurrency=1)
        first = rest_run(settings, config)
        second = rest_run(settings, config)
        sent = server.stats.sent_5xx
        detail = f"{sent} x 5xx sent, {retries(first)} retries"
        return verdict(
            "5xx burst",
            [first, second],
            server.truth(),
            settings,
            SOURCE,
            detail,
            fault_seen=sent == 20 and first.failed,
        )


def resets_mid_page(work_dir: Path) -> FaultOutcome:
    """15% of responses send their headers and half the body, then reset the connection."""
    settings = work_settings(work_dir)
    with start_server(scenario=Scenario(seed=5, fraction_reset=0.15)) as server:
        run = rest_run(settings, rest_config(server.base_url, page_size=25))
        resets = server.stats.resets
        detail = f"{resets} connections reset mid-body, {retries(run)} retries"
        return verdict(
            "connection resets mid-page",
            [run],
            server.truth(),
            settings,
            SOURCE,
            detail,
            fault_seen=resets > 0,
        )


def read_timeouts(work_dir: Path) -> FaultOutcome:
    """Two responses wait 2 s against a 1 s read timeout (a slow link): retried. (2 s against
    1 s: far enough apart that a loaded machine's ordinary responses never time out too.)"""
    settings = work_settings(work_dir)
    with start_server(scenario=Scenario()) as server:
        server.scenario.slow_next(2, 2.0)
        config = rest_config(server.base_url, read_timeout=1.0, concurrency=1)
        run = rest_run(settings, config)
        timeouts = 0
        if run.report is not None:
            timeouts = sum(1 for r in run.report.requests if r.error_class == "ReadTimeout")
        detail = f"{timeouts} read timeouts, {retries(run)} retries"
        return verdict(
            "read timeouts on a slow link",
            [run],
            server.truth(),
            settings,
            SOURCE,
            detail,
            fault_seen=timeouts == 2,
        )


def tokens_expiring_mid_backfill(work_dir: Path) -> FaultOutcome:
    """SMART backend services (RS384 client assertion), 1 s tokens, a backfill of five types in
    windows of 100 resources; one slow response makes sure the run outlives its first token."""
    settings = work_settings(work_dir)
    key = make_rsa_key("k1")
    auth = ServerAuth(
        required=True,
        clients={CLIENT: RegisteredClient(jwks=jwk_set(key), scopes={"system/*.read"})},
    )
    scenario = Scenario(token_lifetime_seconds=1)
    with start_server(scenario=scenario, auth=auth) as server:
        server.scenario.slow_next(1, 1.2)  # the run outlives its first token, whatever the CPU
        smart = AuthConfig(
            kind=AuthKind.SMART_BACKEND,
            token_url=server.token_url,
            client_id=CLIENT,
            scope="system/*.read",
            kid=key.public_jwk["kid"],
            algorithm="RS384",
            private_key=key.private_pem,
        )
        config = rest_config(server.base_url, auth=smart, backfill_window_resources=100)
        run = rest_run(settings, config, types=",".join(SUBSET), since=SINCE)
        tokens = server.stats.tokens_issued
        refused = sum(1 for r in server.request_log if r.status == 401)
        windows = run.report.windows_total if run.report is not None else 0
        detail = f"{tokens} tokens issued, {refused} x 401 answered, {windows} backfill windows"
        return verdict(
            "tokens expiring mid-backfill",
            [run],
            truth_of(server, SUBSET),
            settings,
            SOURCE,
            detail,
            fault_seen=tokens >= 2,
        )


def updated_while_paging(work_dir: Path) -> FaultOutcome:
    """Two resources already paged past are updated after every page of five types' searches
    (offsets shift): the window check re-fetches what paging skipped; the moved resources come
    with the next run."""
    settings = work_settings(work_dir)
    with start_server(scenario=Scenario(seed=2, update_while_paging=2)) as server:
        config = rest_config(server.base_url, page_size=25)
        first = rest_run(settings, config, types=",".join(SUBSET))
        server.scenario.update_while_paging = 0
        time.sleep(NEXT_SECOND)
        second = rest_run(settings, config, types=",".join(SUBSET))
        updates = server.stats.updates_while_paging
        repages = 0
        if first.report is not None:
            repages = sum(o.repages for o in first.report.outcomes.values())
        detail = f"{updates} updates while paging, {repages} windows re-paged"
        return verdict(
            "resources updated while paging",
            [first, second],
            truth_of(server, SUBSET),
            settings,
            SOURCE,
            detail,
            fault_seen=updates > 0,
        )


# A valid change to any resource type, so a newer version's content differs from the older's.
_V2_TEXT = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">v2</div>'}


def _newer_versions(
    resources: list[Resource], keys: set[tuple[str, str]], stamp: str
) -> list[Resource]:
    """``resources`` with the resources of ``keys`` one version later, stamped ``stamp`` (after
    every original stamp) and with changed content."""
    newer = []
    for resource in resources:
        if (resource["resourceType"], resource["id"]) in keys:
            version = str(int(resource["meta"]["versionId"]) + 1)
            meta = {**resource["meta"], "versionId": version, "lastUpdated": stamp}
            resource = {**resource, "meta": meta, "text": _V2_TEXT}
        newer.append(resource)
    return newer


def out_of_order_versions(work_dir: Path) -> FaultOutcome:
    """An older version arrives after the newer one is stored: the server holds 9 resources one
    version ahead of the original data, and they are loaded; then a lagging replica still
    holding the original data is backfilled into the same source. The older versions must not
    overwrite the newer ones."""
    settings = work_settings(work_dir)
    types = ("Patient", "Encounter", "Condition")
    original = synthetic_resources()
    changed = {
        (r["resourceType"], r["id"])
        for resource_type in types
        for r in [r for r in original if r["resourceType"] == resource_type][:3]
    }
    newer = _newer_versions(original, changed, "2026-06-02T00:00:00.000Z")
    with start_server(resources=newer) as server:
        truth = {key: value for key, value in server.truth().items() if key[0] in types}
        first = rest_run(settings, rest_config(server.base_url), types=",".join(types))
    with start_server() as replica:
        older = sum(1 for key in changed if int(replica.truth()[key][0]) < int(truth[key][0]))
        second = rest_run(
            settings, rest_config(replica.base_url), types=",".join(types), since=SINCE
        )
        served = replica.stats.resources_served
    merged = second.report.run.resources_merged if second.report is not None else None
    detail = (
        f"{older} older versions among {served} resources delivered again, {merged} of them merged"
    )
    return verdict(
        "out-of-order versions",
        [first, second],
        truth,
        settings,
        SOURCE,
        detail,
        fault_seen=older == len(changed) == 9,
    )


def same_page_twice(work_dir: Path) -> FaultOutcome:
    """A replaying cache answers page 2 of Observation searches with page 1 again: page 1
    arrives twice (its resources must be stored once) and page 2's entries never arrive by
    paging (the window check must notice and fetch them by id)."""
    settings = work_settings(work_dir)
    with start_server(scenario=Scenario(repeat_page=("Observation", 2))) as server:
        run = rest_run(settings, rest_config(server.base_url, page_size=25))
        repeated = server.stats.repeated_pages
        repages = 0
        if run.report is not None:
            repages = sum(o.repages for o in run.report.outcomes.values())
        detail = f"{repeated} page(s) served as the previous one, {repages} window(s) re-paged"
        return verdict(
            "same page delivered twice",
            [run],
            server.truth(),
            settings,
            SOURCE,
            detail,
            fault_seen=repeated > 0,
        )


SCENARIOS = [
    storm_of_429,
    burst_of_5xx,
    resets_mid_page,
    read_timeouts,
    tokens_expiring_mid_backfill,
    updated_while_paging,
    out_of_order_versions,
    same_page_twice,
]
