"""Run metrics per resource type, and the request/page budget meter."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from loaders.exceptions import ConfigError
from loaders.http.request_log import RequestRecord
from loaders.ops.budgets import BudgetMeter, RunBudget
from loaders.ops.metrics import UNTYPED, CostRates, percentile, run_metrics_rows, run_metrics_table
from loaders.resources import RejectReason
from loaders.warehouse.operational import RUN_METRICS_SCHEMA, QuarantineRecord, RunRecord

T0 = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


@dataclass
class Outcome:
    status: str
    pages: int
    resources: int
    error_kind: str | None = None


def _record(
    rtype: str | None,
    latency: float,
    *,
    at: float,
    status: int | None = 200,
    outcome: str = "ok",
    size: int = 1000,
) -> RequestRecord:
    return RequestRecord(
        request_id=f"r{at}",
        resource_type=rtype,
        method="GET",
        path_template=rtype or "metadata",
        query_keys="_count",
        status=status,
        latency_ms=latency,
        attempt=1,
        outcome=outcome,  # type: ignore[arg-type]
        error_class=None,
        retry_after_seconds=None,
        response_bytes=size,
        started_at=T0 + timedelta(seconds=at),
    )


def _run() -> RunRecord:
    return RunRecord(
        run_id="20261122T040000Z-abcdef",
        source_system="epic",
        command="load rest",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=30),
        status="partially_failed",
        counts_by_type={"Observation": 2000, "Patient": 0},
        merged_by_type={"Observation": 1500},
    )


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7
    assert percentile([], 0.5) is None


def test_rows_per_type_count_what_each_type_cost() -> None:
    requests = [
        _record("Observation", 100, at=0),
        _record("Observation", 300, at=1, status=429, outcome="retry", size=0),
        _record("Observation", 200, at=2),
        _record("Observation", 50, at=3, status=401, outcome="auth_refresh", size=0),
        _record("Observation", 400, at=4, status=503, outcome="retry", size=10),
        _record("Patient", 80, at=0, status=400, outcome="failed", size=5),
        _record(None, 20, at=0),
    ]
    quarantined = [
        QuarantineRecord(
            "r", "epic", "page", 1, "Observation", "x", RejectReason.MISSING_ID, "id", None, T0
        ),
        QuarantineRecord(
            "r", "epic", "page", 2, None, None, RejectReason.INVALID_JSON, "$", None, T0
        ),
    ]
    outcomes = {
        "Observation": Outcome("succeeded", 20, 2000),
        "Patient": Outcome("failed", 0, 0, "SchemaDriftError"),
        "Condition": Outcome("skipped", 0, 0),
    }

    rows = run_metrics_rows(
        _run(),
        outcomes,
        requests,
        quarantined,
        token_refreshes=3,
        warehouse_seconds=8.0,
        costs=CostRates(per_1k_requests=2.0, warehouse_per_hour=3.6),
    )

    by_type = {row["resource_type"]: row for row in rows}
    assert set(by_type) == {"Condition", "Observation", "Patient", UNTYPED}
    obs = by_type["Observation"]
    assert (obs["requests"], obs["retries"], obs["http_429"], obs["http_5xx"]) == (5, 2, 1, 1)
    assert obs["token_refreshes"] == 1  # the 401-forced one
    assert (obs["pages"], obs["resources_received"], obs["resources_landed"]) == (20, 2000, 2000)
    assert (obs["resources_merged"], obs["resources_unchanged"]) == (1500, 500)
    assert obs["resources_quarantined"] == 1
    assert obs["response_bytes"] == 2010
    assert obs["latency_p50_ms"] == 200 and obs["latency_p95_ms"] == 400
    assert obs["latency_max_ms"] == 400
    assert obs["duration_seconds"] == pytest.approx(4.4)  # first start to last end
    assert obs["warehouse_seconds"] == pytest.approx(8.0)  # every landed resource is its
    assert obs["requests_per_1k_resources"] == pytest.approx(2.5)
    assert obs["warehouse_seconds_per_1k_resources"] == pytest.approx(4.0)
    # (5 requests x 2/1000 + 8 s x 3.6/3600) per 2,000 resources, times 1,000
    assert obs["estimated_cost_per_1k_resources"] == pytest.approx((0.01 + 0.008) / 2)
    assert obs["drift_findings"] == 0
    patient = by_type["Patient"]
    assert patient["status"] == "failed" and patient["drift_findings"] == 1
    assert patient["failed_requests"] == 1 and patient["requests_per_1k_resources"] is None
    assert by_type["Condition"]["status"] == "skipped" and by_type["Condition"]["requests"] == 0
    untyped = by_type[UNTYPED]
    assert untyped["requests"] == 1 and untyped["status"] == "partially_failed"
    assert untyped["token_refreshes"] == 2  # three tokens, one of them forced by Observation
    assert untyped["resources_quarantined"] == 1  # the line without a type
    assert untyped["duration_seconds"] == 30
    table = run_metrics_table(rows)
    assert table.schema == RUN_METRICS_SCHEMA and table.num_rows == 4


def test_prices_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_ELT_COST_PER_1K_REQUESTS", "0.5")
    monkeypatch.setenv("FHIR_ELT_WAREHOUSE_COST_PER_HOUR", "4")
    assert CostRates.resolve() == CostRates(0.5, 4.0)
    monkeypatch.setenv("FHIR_ELT_WAREHOUSE_COST_PER_HOUR", "lots")
    with pytest.raises(ConfigError, match="FHIR_ELT_WAREHOUSE_COST_PER_HOUR"):
        CostRates.resolve()


def test_budget_meter_stops_at_the_first_ceiling_reached() -> None:
    stop = threading.Event()
    meter = BudgetMeter(RunBudget(max_requests=3, max_pages=10), stop, "epic")
    meter.on_request(_record("Patient", 10, at=0))
    meter.on_request(_record("Patient", 10, at=1))
    assert not stop.is_set() and not meter.exhausted
    meter.on_request(_record("Patient", 10, at=2))
    assert stop.is_set() and meter.exhausted
    assert meter.reason is not None
    assert "3 requests of max_requests_per_run 3 for source epic" in meter.reason
    meter.on_request(_record("Patient", 10, at=3))  # in flight: counted, the reason stays
    assert "3 requests" in (meter.reason or "") and meter.requests == 4


def test_budget_counts_pages_as_they_arrive() -> None:
    stop = threading.Event()
    meter = BudgetMeter(RunBudget(max_pages=2), stop, "epic")
    not_pages = [
        _record(None, 5, at=0),  # the CapabilityStatement
        _record("Patient", 5, at=1, status=429, outcome="retry"),
        _record("Patient", 5, at=2, status=401, outcome="auth_refresh"),
    ]
    for record in not_pages:
        meter.on_request(record)
    assert meter.pages == 0
    meter.on_request(_record("Patient", 5, at=4))
    assert not stop.is_set()
    next_link = _record("Patient", 5, at=5)
    meter.on_request(replace(next_link, path_template="{base}"))
    assert stop.is_set() and "max_pages_per_run 2" in (meter.reason or "")
    unlimited = BudgetMeter(RunBudget(), threading.Event(), "epic")
    for at in range(1000):
        unlimited.on_request(_record("Patient", 1, at=at))
    assert not unlimited.exhausted


def test_count_searches_are_not_pages() -> None:
    meter = BudgetMeter(RunBudget(max_pages=1), threading.Event(), "epic")
    meter.on_request(replace(_record("Patient", 5, at=0), query_keys="_lastUpdated,_summary"))
    assert meter.pages == 0 and not meter.exhausted


def test_budget_resolves_flags_over_source_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__FHIR_REST__EPIC__MAX_REQUESTS_PER_RUN", "500")
    monkeypatch.setenv("SOURCES__FHIR_REST__EPIC__MAX_PAGES_PER_RUN", "40")
    assert RunBudget.resolve("epic") == RunBudget(500, 40)
    assert RunBudget.resolve("epic", max_pages=5) == RunBudget(500, 5)
    monkeypatch.setenv("SOURCES__FHIR_REST__EPIC__MAX_PAGES_PER_RUN", "0")
    with pytest.raises(ConfigError, match=r"sources\.fhir_rest\.epic\.max_pages_per_run"):
        RunBudget.resolve("epic")
    with pytest.raises(ConfigError, match="--max-requests"):
        RunBudget.resolve("other", max_requests=-1)
