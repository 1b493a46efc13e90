"""Per run and resource type: what a REST run or Bulk export cost and delivered (``run_metrics``).

One row per resource type the run touched (skipped types included, with zeros), plus one
``(untyped)`` row for requests that belong to no type (the CapabilityStatement) and for the
tokens the provider obtained on its own schedule. Columns: requests, retries, 429s, 5xx, token
refreshes, pages, bytes, latency percentiles, resources received / landed / merged / unchanged
/ quarantined, drift findings, duration, warehouse (merge) seconds, and the cost per thousand
resources in requests, in warehouse seconds and, when prices are configured, in money.

Prices (both default 0, so the money column is 0 until set): ``FHIR_ELT_COST_PER_1K_REQUESTS``
(what the source charges per thousand requests, if anything) and
``FHIR_ELT_WAREHOUSE_COST_PER_HOUR`` (e.g. credits per hour times the credit price), or the same
keys under ``[fhir_elt]`` in ``.dlt/config.toml``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import dlt
import pyarrow as pa

from loaders.exceptions import ConfigError
from loaders.http.request_log import RequestRecord
from loaders.runs import safe_error
from loaders.settings import LoadSettings
from loaders.warehouse.operational import (
    RUN_METRICS,
    RUN_METRICS_SCHEMA,
    QuarantineRecord,
    RunRecord,
)
from loaders.warehouse.pipeline import make_pipeline

logger = logging.getLogger(__name__)

UNTYPED = "(untyped)"

T = TypeVar("T")


class TypeOutcomeLike(Protocol):
    """What the metrics read of a REST type outcome (``loaders.rest.sync.TypeOutcome``)."""

    status: str
    pages: int
    resources: int
    error_kind: str | None


@dataclass(frozen=True, slots=True)
class CostRates:
    """Prices used for ``estimated_cost_per_1k_resources``.

    Attributes:
        per_1k_requests: Cost of a thousand requests to the source (0 for most EHRs).
        warehouse_per_hour: Cost of an hour of warehouse time during the merge.
    """

    per_1k_requests: float = 0.0
    warehouse_per_hour: float = 0.0

    @classmethod
    def resolve(cls) -> CostRates:
        """Prices from the environment, then ``[fhir_elt]`` in dlt config, else 0."""
        return cls(
            _price("cost_per_1k_requests", "FHIR_ELT_COST_PER_1K_REQUESTS"),
            _price("warehouse_cost_per_hour", "FHIR_ELT_WAREHOUSE_COST_PER_HOUR"),
        )


def _price(name: str, env_var: str) -> float:
    raw = os.environ.get(env_var) or dlt.config.get(f"fhir_elt.{name}") or 0
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{env_var} (fhir_elt.{name}) must be a number, got {raw!r}") from None
    if value < 0 or math.isnan(value):
        raise ConfigError(f"{env_var} (fhir_elt.{name}) must be >= 0, got {value}")
    return value


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _span_seconds(records: Sequence[RequestRecord]) -> float:
    """From the first attempt's start to the last attempt's end."""
    if not records:
        return 0.0
    start = min(record.started_at for record in records)
    end = max(record.started_at + timedelta(milliseconds=record.latency_ms) for record in records)
    return max(0.0, (end - start).total_seconds())


def _per_1k(amount: float, resources: int) -> float | None:
    return None if resources <= 0 else round(amount * 1000.0 / resources, 6)


def run_metrics_rows(
    run: RunRecord,
    outcomes: Mapping[str, TypeOutcomeLike],
    requests: Sequence[RequestRecord],
    quarantined: Iterable[QuarantineRecord],
    *,
    token_refreshes: int = 0,
    warehouse_seconds: float = 0.0,
    stopped_by_budget: bool = False,
    costs: CostRates | None = None,
) -> list[dict[str, Any]]:
    """The ``run_metrics`` rows of one finished run (see the module docstring).

    Args:
        run: The run's record (counts per type, status, times).
        outcomes: Per type: status, pages, resources received, error kind.
        requests: Every HTTP attempt of the run.
        quarantined: The run's refused resources.
        token_refreshes: Tokens the provider obtained during the run, all causes.
        warehouse_seconds: Time spent merging, shared among types by resources landed.
        stopped_by_budget: Whether a request or page budget stopped the run.
        costs: Prices (default: :meth:`CostRates.resolve`).
    """
    costs = costs or CostRates.resolve()
    by_type: dict[str | None, list[RequestRecord]] = defaultdict(list)
    for record in requests:
        by_type[record.resource_type].append(record)
    rejects = Counter(record.resource_type for record in quarantined)
    types = sorted(
        set(outcomes)
        | set(run.counts_by_type)
        | {t for t in by_type if t is not None}
        | {t for t in rejects if t is not None}
    )
    landed_total = sum(run.counts_by_type.values())
    forced_refreshes = sum(1 for r in requests if r.outcome == "auth_refresh")
    run_seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
    rows = []
    for resource_type in [*types, UNTYPED]:
        typed = resource_type != UNTYPED
        records = by_type.get(resource_type if typed else None, [])
        outcome = outcomes.get(resource_type) if typed else None
        landed = run.counts_by_type.get(resource_type, 0) if typed else 0
        merged = run.merged_by_type.get(resource_type, 0) if typed else 0
        if typed:
            share = landed / landed_total if landed_total else 0.0
            refreshes = sum(1 for r in records if r.outcome == "auth_refresh")
            seconds = _span_seconds(records)
            status = outcome.status if outcome is not None else "succeeded"
            quarantined_count = rejects.get(resource_type, 0)
        else:
            share = 0.0 if landed_total else 1.0
            refreshes = max(0, token_refreshes - forced_refreshes)
            seconds = run_seconds
            status = run.status
            quarantined_count = rejects.get(None, 0)
        type_warehouse = warehouse_seconds * share
        latencies = [r.latency_ms for r in records]
        request_count = len(records)
        row = {
            "run_id": run.run_id,
            "source_system": run.source_system,
            "command": run.command,
            "resource_type": resource_type,
            "status": status,
            "run_status": run.status,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "duration_seconds": round(seconds, 3),
            "requests": request_count,
            "retries": sum(1 for r in records if r.outcome == "retry"),
            "http_429": sum(1 for r in records if r.status == 429),
            "http_5xx": sum(1 for r in records if r.status is not None and r.status >= 500),
            "failed_requests": sum(1 for r in records if r.outcome == "failed"),
            "token_refreshes": refreshes,
            "pages": outcome.pages if outcome is not None else 0,
            "response_bytes": sum(r.response_bytes for r in records),
            "latency_p50_ms": percentile(latencies, 0.50),
            "latency_p95_ms": percentile(latencies, 0.95),
            "latency_p99_ms": percentile(latencies, 0.99),
            "latency_max_ms": max(latencies) if latencies else None,
            "resources_received": outcome.resources if outcome is not None else 0,
            "resources_landed": landed,
            "resources_merged": merged,
            "resources_unchanged": max(0, landed - merged),
            "resources_quarantined": quarantined_count,
            "drift_findings": int(outcome is not None and outcome.error_kind == "SchemaDriftError"),
            "warehouse_seconds": round(type_warehouse, 6),
            "requests_per_1k_resources": _per_1k(request_count, landed),
            "warehouse_seconds_per_1k_resources": _per_1k(type_warehouse, landed),
            "estimated_cost_per_1k_resources": _per_1k(
                request_count / 1000.0 * costs.per_1k_requests
                + type_warehouse / 3600.0 * costs.warehouse_per_hour,
                landed,
            ),
            "stopped_by_budget": stopped_by_budget,
        }
        rows.append(row)
    return rows


def timed(items: Iterator[T], spent: list[float]) -> Iterator[T]:
    """Yield from ``items``, appending to ``spent`` the seconds each item took to produce.

    The merge wraps its page source in this, so that the time dlt spends on the warehouse side
    is the merge's duration minus ``sum(spent)``.
    """
    while True:
        started_at = time.monotonic()
        try:
            item = next(items)
        except StopIteration:
            spent.append(time.monotonic() - started_at)
            return
        spent.append(time.monotonic() - started_at)
        yield item


def run_metrics_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The rows as an arrow table with the ``run_metrics`` schema."""
    return pa.Table.from_pylist(
        [{name: row.get(name) for name in RUN_METRICS_SCHEMA.names} for row in rows],
        RUN_METRICS_SCHEMA,
    )


def write_run_metrics(settings: LoadSettings, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Merge ``rows`` into ``run_metrics`` (key: run and type); a failure is logged, not raised.

    Returns:
        Whether the rows were written.
    """
    if not rows:
        return True
    try:
        pipeline = make_pipeline(settings)
        pipeline.run(
            dlt.resource(
                [run_metrics_table(rows)],
                name=RUN_METRICS,
                write_disposition="merge",
                primary_key=("run_id", "resource_type"),
            )
        )
    except Exception as error:
        logger.error("could not record run metrics: %s", safe_error(error))
        return False
    return True


def describe_row(row: Mapping[str, Any]) -> str:
    """A one-line, identifier-free summary of a metrics row for the command's report."""
    p95 = row.get("latency_p95_ms")
    cost = row.get("requests_per_1k_resources")
    parts = [
        f"{row['requests']} req",
        f"{row['retries']} retries",
        f"{row['http_429']} x429",
        f"p95 {p95:.0f} ms" if p95 is not None else "p95 -",
        f"{row['response_bytes'] / 1_048_576:.1f} MiB",
    ]
    if cost is not None:
        parts.append(f"{cost:.1f} req/1k")
    return ", ".join(parts)
