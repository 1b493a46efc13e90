"""Property-based fuzzing of the NDJSON and Bundle readers and of reference rewriting.

Generated inputs (``tests/hostile/fuzz.py``) carry a marker string in every value; the
properties: nothing but fhir-elt's own exception types escapes, no rejection or message quotes
the input, and what is accepted is well-formed. ``FUZZ_EXAMPLES`` raises the number of
examples per property (``make reliability`` runs many more through
``tests/reliability/hostile_report.py``).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.hostile.fuzz import (
    CRASH,
    bundles,
    check_bundle,
    check_ndjson,
    check_references,
    ndjson_files,
    references,
)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(ndjson_files())
def test_ndjson_reader_never_crashes_nor_quotes_its_input(file: tuple[bytes, bool]) -> None:
    data, compressed = file
    verdict = check_ndjson(data, compressed)
    assert verdict.outcome != CRASH, verdict.why


@FUZZ
@given(bundles)
def test_bundle_reader_refuses_wrong_bundles_whole_and_accepts_only_well_formed(
    bundle: dict[str, Any],
) -> None:
    verdict = check_bundle(bundle)
    assert verdict.outcome != CRASH, verdict.why


@FUZZ
@given(references())
def test_reference_rewriting_touches_only_bundle_references(
    case: tuple[Any, dict[str, str]],
) -> None:
    node, targets = case
    verdict = check_references(node, targets)
    assert verdict.outcome != CRASH, verdict.why
