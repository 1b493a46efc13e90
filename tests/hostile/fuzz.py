"""Property checks of the file readers and reference rewriting, and hypothesis strategies.

Each ``check_*`` function feeds one generated input to the real code and returns a
:class:`Verdict` instead of raising, so the unit tests (``tests/unit/test_fuzz_readers.py``)
can assert on it and the reliability report can count it. The properties:

- only fhir-elt's own exception types escape (today: none escape the readers at all);
- a rejection's JSON path never carries a fragment of the input (every generated string value
  and key carries :data:`~tests.hostile.cases.MARKER`);
- what is accepted is well-formed: a known resource type, a FHIR id, a sha256 content hash,
  and landed text that decodes to an object with that type and id;
- a Bundle of a type fhir-elt does not load yields exactly one rejection and no resource;
- reference rewriting replaces exactly the references that name a Bundle entry, and nothing
  else in the structure.
"""

from __future__ import annotations

import copy
import gzip
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st

from loaders.exceptions import FhirEltError
from loaders.fhir import is_known_resource_type
from loaders.files.bundles import LOADABLE_BUNDLE_TYPES, BundleEntry, iter_bundle
from loaders.files.discover import InputFile, InputKind
from loaders.files.reader import FileItem, iter_file_items
from loaders.files.references import rewrite_references
from loaders.resources import ParsedResource, Rejection, RejectReason
from tests.hostile.cases import MARKER

ACCEPTED, CLEAR, CRASH = "accepted", "clear", "crash"
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Verdict:
    """How one generated input fared: ``accepted`` (all loaded), ``clear`` (something refused
    with a well-formed rejection, or one of our exceptions) or ``crash`` (with why)."""

    outcome: str
    why: str = ""


# ---- strategies ---------------------------------------------------------------------------

_marked_text = st.text(max_size=12).map(lambda text: f"{MARKER}{text}")
_keys = (
    st.sampled_from(
        [
            "resourceType",
            "id",
            "meta",
            "lastUpdated",
            "versionId",
            "entry",
            "resource",
            "fullUrl",
            "reference",
            "type",
            "search",
            "mode",
            "gender",
            "subject",
        ]
    )
    | _marked_text
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _marked_text
)
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=4),
    max_leaves=20,
)
_resource_types = st.sampled_from(["Patient", "Observation", "Encounter", "Bundle", "patient"])
_ids = st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True) | _marked_text | st.just("")
_instants = (
    st.sampled_from(
        [
            "2026-11-20T10:00:00Z",
            "2026-11-20T10:00:00.123+02:00",
            "0001-01-01T00:00:00+14:00",
            "0999-01-01T00:00:00Z",
            "2026-11-20T10:00:00",
            "2026-02-30T10:00:00Z",
        ]
    )
    | _marked_text
)
_valid_ids = st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True)
_good_meta = st.fixed_dictionaries(
    {}, optional={"lastUpdated": _instants.filter(lambda v: v.endswith("Z")), "versionId": _ids}
)
# Mostly loadable resources (with hostile values inside), so accepted paths are fuzzed too.
_loadable = st.fixed_dictionaries(
    {
        "resourceType": st.sampled_from(["Patient", "Observation", "Encounter"]),
        "id": _valid_ids,
    },
    optional={
        "meta": _good_meta,
        "name": json_values,
        "subject": st.fixed_dictionaries({"reference": _marked_text}),
    },
)
resources = _loadable | st.fixed_dictionaries(
    {},
    optional={
        "resourceType": _resource_types | json_values,
        "id": _ids | json_values,
        "meta": st.fixed_dictionaries(
            {}, optional={"lastUpdated": _instants | json_values, "versionId": json_values}
        )
        | json_values,
        "name": json_values,
        "subject": st.fixed_dictionaries({"reference": _marked_text}),
    },
)
_bundle_types = (
    st.sampled_from(sorted(LOADABLE_BUNDLE_TYPES))
    | st.sampled_from(["document", "message", "Transaction", "transaction-response"])
    | json_values
)
_full_urls = st.uuids().map(lambda value: f"urn:uuid:{value}") | _marked_text | json_values
entries = (
    st.fixed_dictionaries(
        {},
        optional={
            "fullUrl": _full_urls,
            "resource": resources | json_values,
            "search": st.fixed_dictionaries(
                {},
                optional={"mode": st.sampled_from(["match", "include", "outcome"]) | json_values},
            )
            | json_values,
        },
    )
    | json_values
)
bundles = st.fixed_dictionaries(
    {"resourceType": st.just("Bundle")},
    optional={"type": _bundle_types, "entry": st.lists(entries, max_size=6) | json_values},
)


def _line_bytes(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["resource", "bundle", "json", "bytes", "truncated", "bigint"]))
    if kind == "bigint":  # JSON allows integers of any size; orjson reads them as floats
        text = orjson.dumps(draw(resources))
        return text[:-1] + b',"multipleBirthInteger":' + str(draw(st.integers())).encode() + b"}"
    if kind == "resource":
        return orjson.dumps(draw(resources))
    if kind == "bundle":
        return orjson.dumps(draw(bundles))
    if kind == "json":
        return orjson.dumps(draw(json_values))
    if kind == "bytes":
        return draw(st.binary(max_size=40)) + MARKER.encode()
    text = orjson.dumps(draw(resources))
    return text[: draw(st.integers(min_value=0, max_value=len(text)))]


@st.composite
def ndjson_files(draw: Any) -> tuple[bytes, bool]:
    """``(file bytes, gzip)``: lines of resources, Bundles, JSON, garbage and truncations,
    optionally gzipped (and then perhaps cut short)."""
    lines = [_line_bytes(draw) for _ in range(draw(st.integers(min_value=0, max_value=6)))]
    separator = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = separator.join(lines)
    compressed = draw(st.booleans())
    if compressed:
        data = gzip.compress(data, mtime=0)
        if draw(st.booleans()):
            data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    return data, compressed


@st.composite
def references(draw: Any) -> tuple[Any, dict[str, str]]:
    """A structure with ``reference`` strings and the Bundle's ``fullUrl -> Type/id`` map."""
    urls = draw(st.lists(_marked_text | st.uuids().map(lambda u: f"urn:uuid:{u}"), max_size=4))
    targets = {url: f"Patient/{draw(_ids)}" for url in urls}
    pool = [*urls, *draw(st.lists(st.text(max_size=20), max_size=3))] or [MARKER]
    reference_values = st.sampled_from(pool) | json_values
    node = draw(
        st.recursive(
            st.fixed_dictionaries({"reference": reference_values}) | _scalars,
            lambda children: (
                st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=3)
            ),
            max_leaves=15,
        )
    )
    return node, targets


# ---- checks -------------------------------------------------------------------------------


def _check_items(items: list[FileItem], lines: int) -> Verdict:
    refused = False
    for item in items:
        result = item.result
        if isinstance(result, Rejection):
            refused = True
            if not isinstance(result.reason, RejectReason):
                return Verdict(CRASH, "a rejection without a known reason")
            if MARKER.lower() in result.json_path.lower():
                return Verdict(CRASH, "a rejection's JSON path quotes the input")
            if item.line_number < 1 or item.line_number > lines + 1:
                return Verdict(CRASH, f"line {item.line_number} outside the file")
            continue
        problem = _malformed(result)
        if problem:
            return Verdict(CRASH, problem)
    return Verdict(CLEAR if refused else ACCEPTED)


def _malformed(result: ParsedResource) -> str:
    if not is_known_resource_type(result.resource_type):
        return "accepted an unknown resource type"
    if not _FHIR_ID.fullmatch(result.id):
        return "accepted an id that is not a FHIR id"
    if not _HASH.fullmatch(result.content_hash):
        return "a content hash that is not sha256"
    try:
        document = orjson.loads(result.text)
    except orjson.JSONDecodeError:
        return "landed text that is not JSON"
    if (
        not isinstance(document, dict)
        or document.get("resourceType") != result.resource_type
        or document.get("id") != result.id
    ):
        return "landed text that does not match the accepted type and id"
    return ""


def _read(data: bytes, suffix: str, kind: InputKind, compressed: bool) -> list[FileItem]:
    with tempfile.TemporaryDirectory(prefix="fhir-elt-fuzz-") as directory:
        path = Path(directory) / f"input{suffix}"
        path.write_bytes(data)
        return list(iter_file_items(InputFile(path, kind, compressed)))


def _guard(function: Any, *args: Any) -> Verdict:
    try:
        return function(*args)
    except FhirEltError as error:
        if MARKER.lower() in str(error).lower():
            return Verdict(CRASH, f"{type(error).__name__} quotes the input")
        return Verdict(CLEAR, type(error).__name__)
    except Exception as error:  # the property under test: nothing else escapes
        return Verdict(CRASH, f"unexpected {type(error).__name__}")


def check_ndjson(data: bytes, compressed: bool) -> Verdict:
    """The NDJSON reader on one file's bytes."""

    def run() -> Verdict:
        suffix = ".ndjson.gz" if compressed else ".ndjson"
        items = _read(data, suffix, InputKind.NDJSON, compressed)
        lines = data.count(b"\n") + 1 if not compressed else 10**9
        return _check_items(items, lines)

    return _guard(run)


def check_bundle(bundle: Any) -> Verdict:
    """``iter_bundle`` on a decoded Bundle, then the reader on the same Bundle as a file."""

    def run() -> Verdict:
        items = list(iter_bundle(copy.deepcopy(bundle)))
        entries = bundle.get("entry")
        count = len(entries) if isinstance(entries, list) else 0
        bundle_type = bundle.get("type")
        loadable = isinstance(bundle_type, str) and bundle_type in LOADABLE_BUNDLE_TYPES
        whole = len(items) == 1 and isinstance(items[0], tuple) and items[0][0] == -1
        if not loadable and not whole:
            return Verdict(CRASH, "a Bundle of a type not loaded was not refused whole")
        for item in items:
            index = item.index if isinstance(item, BundleEntry) else item[0]
            if not -1 <= index < max(count, 1):
                return Verdict(CRASH, f"entry index {index} outside the Bundle")
        text = orjson.dumps(bundle)
        return _check_items(_read(text, ".json", InputKind.JSON, False), 1)

    return _guard(run)


def _expected_rewrite(node: Any, targets: dict[str, str]) -> tuple[Any, int]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        count = 0
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                out[key] = targets.get(value, value)
                count += value in targets
            elif isinstance(value, dict | list):
                out[key], added = _expected_rewrite(value, targets)
                count += added
            else:
                out[key] = value
        return out, count
    if isinstance(node, list):
        pairs = [_expected_rewrite(item, targets) for item in node]
        return [value for value, _ in pairs], sum(added for _, added in pairs)
    return node, 0


def check_references(node: Any, targets: dict[str, str]) -> Verdict:
    """``rewrite_references`` against a plain recursive model of what it must do."""

    def run() -> Verdict:
        expected, count = _expected_rewrite(node, targets)
        rewritten = copy.deepcopy(node)
        replaced = rewrite_references(rewritten, targets)
        if rewritten != expected:
            return Verdict(CRASH, "rewrote something other than a Bundle entry's reference")
        if replaced != count:
            return Verdict(CRASH, f"reported {replaced} rewrites, made {count}")
        return Verdict(ACCEPTED)  # nothing to refuse here: the property held

    return _guard(run)
