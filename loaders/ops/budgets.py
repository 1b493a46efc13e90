"""Per-run budgets on requests and pages, per source: a run stops cleanly when one is reached.

Configured per source (``[sources.fhir_rest.<name>]`` in ``.dlt/config.toml``, or
``SOURCES__FHIR_REST__<NAME>__MAX_REQUESTS_PER_RUN`` / ``..._MAX_PAGES_PER_RUN``) or per
command (``--max-requests``, ``--max-pages``, which win). When a budget is reached the meter
sets the run's stop flag, the same one Ctrl-C sets: workers finish the page they are on, what
landed is merged, cursors of unfinished types stay put, and the command exits with code 4 and
a message naming the budget. Running again resumes. The budget is a ceiling on what the run
*starts*: requests already in flight (at most ``concurrency``, plus their retries) complete.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import dlt

from loaders.exceptions import ConfigError
from loaders.fhir import is_known_resource_type
from loaders.http.request_log import RequestRecord

logger = logging.getLogger(__name__)


def _limit(source: str, key: str, override: int | None) -> int | None:
    if override is not None:
        value: Any = override
        where = f"--max-{key.split('_')[1]}"
    else:
        value = dlt.config.get(f"sources.fhir_rest.{source}.{key}")
        where = f"sources.fhir_rest.{source}.{key}"
        if value in (None, ""):
            return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a whole number, got {value!r}") from None
    if number < 1:
        raise ConfigError(f"{where} must be at least 1, got {number}")
    return number


def is_search_page(record: RequestRecord) -> bool:
    """A successful search answer (a Bundle page), not a count-only search nor a read."""
    if record.outcome != "ok" or "_summary" in record.query_keys.split(","):
        return False
    template = record.path_template
    return template == "{base}" or template.endswith("_search") or is_known_resource_type(template)


@dataclass(frozen=True, slots=True)
class RunBudget:
    """Ceilings for one run; None means no ceiling."""

    max_requests: int | None = None
    max_pages: int | None = None

    @classmethod
    def resolve(
        cls, source: str, *, max_requests: int | None = None, max_pages: int | None = None
    ) -> RunBudget:
        """Command-line values, else the source's ``max_requests_per_run`` / ``max_pages_per_run``.

        Raises:
            ConfigError: A value is not a whole number >= 1 (the message names its key).
        """
        return cls(
            _limit(source, "max_requests_per_run", max_requests),
            _limit(source, "max_pages_per_run", max_pages),
        )


class BudgetMeter:
    """Counts a run's requests and pages; sets ``stop`` once a budget is reached.

    Thread-safe: HTTP workers report requests, the merging thread reports pages.
    """

    def __init__(self, budget: RunBudget, stop: threading.Event, source: str) -> None:
        self.budget = budget
        self.stop = stop
        self.source = source
        self.requests = 0
        self.pages = 0
        self.reason: str | None = None
        self._lock = threading.Lock()

    @property
    def exhausted(self) -> bool:
        """Whether a budget stopped the run."""
        return self.reason is not None

    def on_request(self, record: RequestRecord) -> None:
        """Count one HTTP attempt, and a page when it received one.

        Counted as the worker receives it (not when the page is merged), so at most the pages
        already in flight on other workers arrive after the ceiling.
        """
        with self._lock:
            self.requests += 1
            self._check("requests", self.requests, self.budget.max_requests)
            if is_search_page(record):
                self.pages += 1
                self._check("pages", self.pages, self.budget.max_pages)

    def _check(self, what: str, used: int, ceiling: int | None) -> None:
        if ceiling is None or used < ceiling or self.reason is not None:
            return
        self.reason = (
            f"budget reached: {used:,} {what} of max_{what}_per_run {ceiling:,} for source "
            f"{self.source}; stopped after the pages in flight, merged what landed, and left "
            "the cursors of unfinished types where they were: the next run continues"
        )
        logger.warning("%s", self.reason)
        self.stop.set()
