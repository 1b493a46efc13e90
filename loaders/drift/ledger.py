"""A run's drift findings: checked page by page, recorded once in ``raw_fhir.schema_drift``.

Every loader lands pages through :class:`loaders.ingest.PageIngest`, which hands each landed
page to the run's :class:`DriftLedger` before the page's rows go to the merge. The ledger
detects (:mod:`loaders.drift.detector`), applies the source's policy
(:mod:`loaders.drift.policy`), adds ``warn`` and ``fail`` findings to the run's totals (count
of resources, first landing file where seen) and raises :class:`SchemaDriftError` on a ``fail``
finding, so nothing of that page is merged.

One ledger per run id (:func:`run_ledger`): a REST sync builds a fresh ``PageIngest`` per merge,
and all of them add to the same totals. :func:`take_run_findings` hands the totals to
``record_run`` (which writes them with the run's other operational rows) and forgets them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import pyarrow as pa

from loaders.drift.detector import (
    DriftObservation,
    Shape,
    detect_texts,
    observations_from_shapes,
)
from loaders.drift.policy import POLICY_ENV_VAR, DriftAction, DriftPolicy, load_drift_policy
from loaders.exceptions import SchemaDriftError
from loaders.resources import ParsedResource

logger = logging.getLogger(__name__)

SCHEMA_DRIFT = "schema_drift"
SCHEMA_DRIFT_KEY = ("run_id", "resource_type", "json_path", "observed_kind")
_TIMESTAMP = pa.timestamp("us", tz="UTC")
SCHEMA_DRIFT_SCHEMA = pa.schema(
    [
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("resource_type", pa.string(), nullable=False),
        pa.field("json_path", pa.string(), nullable=False),
        pa.field("observed_kind", pa.string(), nullable=False),
        pa.field("expected_kind", pa.string(), nullable=False),
        pa.field("first_seen_landing_file", pa.string(), nullable=False),
        pa.field("first_seen_at", _TIMESTAMP, nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("policy", pa.string(), nullable=False),
    ]
)


@dataclass(slots=True)
class DriftFinding:
    """One row of ``schema_drift``: a drifted shape of one type, totalled over a run.

    Attributes:
        source_system: The source.
        resource_type: The resource type.
        json_path: Where (``Patient.name.family``), without indices.
        observed_kind: The JSON kind seen.
        expected_kind: The definition's JSON kind, or ``unknown`` for an element it lacks.
        first_seen_landing_file: The landing page where the run first saw it.
        first_seen_at: When that page was fetched or read.
        run_id: The run.
        count: Resources of the run carrying it.
        policy: ``warn`` or ``fail``.
    """

    source_system: str
    resource_type: str
    json_path: str
    observed_kind: str
    expected_kind: str
    first_seen_landing_file: str
    first_seen_at: datetime
    run_id: str
    count: int
    policy: str

    def describe(self) -> str:
        """The finding for a message: type, path and kinds, never a value."""
        what = (
            "element not in the R4 definition"
            if self.expected_kind == "unknown"
            else f"expected {self.expected_kind}"
        )
        return f"{self.json_path} ({self.observed_kind}; {what}; {self.count} resource(s))"


class DriftLedger:
    """Checks a run's pages against their definitions and totals the findings.

    Args:
        run_id: The run.
        policy: The source system's policy.
    """

    def __init__(self, run_id: str, policy: DriftPolicy) -> None:
        self.run_id = run_id
        self.policy = policy
        self.findings: dict[tuple[str, str, str], DriftFinding] = {}
        self.resources_checked = 0

    def check_page(
        self,
        resource_type: str,
        resources: Sequence[ParsedResource],
        landing_file: str,
        at: datetime,
    ) -> None:
        """Check one landed page; raise before its merge when a finding's policy is ``fail``.

        Raises:
            SchemaDriftError: Names the type, every failing path and the landing file.
        """
        observations = detect_texts(resource_type, (resource.text for resource in resources))
        self.check_observations(resource_type, observations, len(resources), landing_file, at)

    def check_shapes(
        self,
        resource_type: str,
        shape_sets: Iterable[frozenset[Shape]],
        resources: int,
        landing_file: str,
        at: datetime,
    ) -> None:
        """:meth:`check_page` for a page whose resources were walked where they were decoded.

        Args:
            resource_type: The page's type.
            shape_sets: The drifted shapes of each drifted resource of the page
                (:func:`loaders.drift.detector.resource_shapes`, as a set).
            resources: How many resources the page holds.
            landing_file: The landed page.
            at: When it was fetched or read.

        Raises:
            SchemaDriftError: Names the type, every failing path and the landing file.
        """
        observations = observations_from_shapes(resource_type, shape_sets)
        self.check_observations(resource_type, observations, resources, landing_file, at)

    def check_observations(
        self,
        resource_type: str,
        observations: Sequence[DriftObservation],
        resources: int,
        landing_file: str,
        at: datetime,
    ) -> None:
        """Apply the policy to one page's findings, total them; raise on a ``fail`` finding."""
        self.resources_checked += resources
        failing: list[DriftFinding] = []
        for observation in observations:
            action = self.policy.action_for(observation)
            if action is DriftAction.ACCEPT:
                continue
            finding = self._add(observation, action, landing_file, at)
            if action is DriftAction.FAIL:
                failing.append(finding)
        if failing:
            raise SchemaDriftError(
                f"{resource_type}: schema drift in landing file {landing_file}: "
                + "; ".join(finding.describe() for finding in failing)
                + ". The drift policy there is fail, so nothing of this batch was merged. Fix "
                "the source or the mapping, or set a policy for the path "
                f"([fhir_elt.drift.{self.policy.source_system}] or {POLICY_ENV_VAR}), "
                "then run again"
            )

    def _add(
        self, observation: DriftObservation, action: DriftAction, landing_file: str, at: datetime
    ) -> DriftFinding:
        key = (observation.resource_type, observation.json_path, observation.observed_kind)
        finding = self.findings.get(key)
        if finding is not None:
            finding.count += observation.count
            return finding
        finding = self.findings[key] = DriftFinding(
            source_system=self.policy.source_system,
            resource_type=observation.resource_type,
            json_path=observation.json_path,
            observed_kind=observation.observed_kind,
            expected_kind=observation.expected_kind,
            first_seen_landing_file=landing_file,
            first_seen_at=at,
            run_id=self.run_id,
            count=observation.count,
            policy=action.value,
        )
        if action is DriftAction.WARN:
            logger.warning("run %s: schema drift (warn): %s", self.run_id, finding.describe())
        return finding

    def table(self) -> pa.Table:
        """The findings as ``schema_drift`` rows (possibly none)."""
        rows = [asdict(finding) for finding in self.findings.values()]
        return pa.Table.from_pylist(rows, SCHEMA_DRIFT_SCHEMA)


_ledgers: dict[str, DriftLedger] = {}
_lock = threading.Lock()


def run_ledger(run_id: str, source_system: str) -> DriftLedger:
    """The ledger of a run, made (with the source's policy) on first use.

    Raises:
        ConfigError: The source's drift policy is malformed.
    """
    with _lock:
        ledger = _ledgers.get(run_id)
        if ledger is None:
            ledger = _ledgers[run_id] = DriftLedger(run_id, load_drift_policy(source_system))
        return ledger


def take_run_findings(run_id: str) -> pa.Table | None:
    """The run's findings as ``schema_drift`` rows, or None when it has none; forgets the run."""
    with _lock:
        ledger = _ledgers.pop(run_id, None)
    if ledger is None or not ledger.findings:
        return None
    return ledger.table()
