"""Schema drift: elements and datatypes a source sends that FHIR R4 does not define.

``detector`` finds them over a page, ``policy`` decides (fail / warn / accept per source and
path), ``ledger`` totals them per run for ``raw_fhir.schema_drift`` and stops a run on ``fail``
before the page is merged; ``staging_paths`` lists where the dbt staging models read.
"""

from loaders.drift.detector import DriftObservation, detect_documents, detect_texts
from loaders.drift.ledger import (
    SCHEMA_DRIFT,
    DriftFinding,
    DriftLedger,
    run_ledger,
    take_run_findings,
)
from loaders.drift.policy import DriftAction, DriftPolicy, DriftRule, load_drift_policy

__all__ = [
    "SCHEMA_DRIFT",
    "DriftAction",
    "DriftFinding",
    "DriftLedger",
    "DriftObservation",
    "DriftPolicy",
    "DriftRule",
    "detect_documents",
    "detect_texts",
    "load_drift_policy",
    "run_ledger",
    "take_run_findings",
]
