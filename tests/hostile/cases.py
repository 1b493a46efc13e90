"""The hostile-input corpus: every case, what is wrong with it, and what fhir-elt must do.

Small cases are files in ``tests/hostile/files/``; big or byte-level ones (deep nesting, a huge
resource, enormous pages, invalid UTF-8, broken gzip) are written at test time by
:mod:`tests.hostile.build`. :func:`materialise` puts a case's file in a directory either way.

Every payload value a message could leak carries :data:`MARKER` (names, codes, bad ids, bad
strings), so a test can grep messages, logs and quarantine rows for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loaders.exceptions import FhirEltError, SchemaDriftError

MARKER = "PHIMARK7Q"
FILES = Path(__file__).parent / "files"

# (reason, line, json_path) of one quarantine row
Refusal = tuple[str, int, str]
Key = tuple[str, str]


def _patients(*ids: str) -> frozenset[Key]:
    return frozenset(("Patient", resource_id) for resource_id in ids)


@dataclass(frozen=True)
class Expected:
    """What one load of the case's file must end with.

    Attributes:
        merged: Keys the run adds to the warehouse (exactly these).
        refused: Quarantine rows of the run (exactly these, any order).
        error: The exception type the run must raise (then nothing of it is merged).
        prefix: For a truncated stream: ``merged`` is a non-empty proper prefix of these
            keys (in file order) instead of an exact set.
        versions: ``{key: versionId}`` that must win among duplicates.
        references: ``{(type, id): reference}`` the first ``subject.reference`` must hold.
    """

    merged: frozenset[Key] = frozenset()
    refused: tuple[Refusal, ...] = ()
    error: type[FhirEltError] | None = None
    prefix: tuple[Key, ...] | None = None
    versions: dict[Key, str] = field(default_factory=dict)
    references: dict[Key, str] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """One line for the README table."""
        if self.error is not None:
            return f"run fails with `{self.error.__name__}`; nothing of it merged"
        parts = []
        reasons: dict[str, int] = {}
        for reason, _, _ in self.refused:
            reasons[reason] = reasons.get(reason, 0) + 1
        if reasons:
            parts.append(
                "quarantine " + ", ".join(f"`{name}` x{count}" for name, count in reasons.items())
            )
        if self.prefix is not None:
            parts.append("the complete lines before the break load")
        elif self.merged:
            parts.append(f"{len(self.merged):,} resource(s) load")
        else:
            parts.append("nothing loads")
        return "; ".join(parts)


@dataclass(frozen=True)
class HostileCase:
    """One hostile input.

    Attributes:
        name: Short id (the file name without its suffix for static files).
        file: The file name (under ``files/`` or as :mod:`tests.hostile.build` writes it).
        wrong: What is wrong with it.
        expected: What fhir-elt must do with it.
        build: Writes the file into a directory (generated cases), else None (static file).
        cli: Also run through ``fhir-elt load files`` in a subprocess.
    """

    name: str
    file: str
    wrong: str
    expected: Expected
    build: Callable[[Path], Path] | None = None
    cli: bool = False


def materialise(case: HostileCase, directory: Path) -> Path:
    """Put the case's file in ``directory`` (copy or generate it); return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    if case.build is not None:
        return case.build(directory)
    target = directory / case.file
    target.write_bytes((FILES / case.file).read_bytes())
    return target


def _static() -> list[HostileCase]:
    bad = "Bundle.entry"
    return [
        HostileCase(
            "truncated_line",
            "truncated_line.ndjson",
            "line 2 is a resource cut in half",
            Expected(_patients("trunc-1", "trunc-3"), (("invalid_json", 2, "$"),)),
            cli=True,
        ),
        HostileCase(
            "truncated_bundle",
            "truncated_bundle.json",
            "a transaction Bundle cut at two thirds",
            Expected(refused=(("invalid_json", 1, "$"),)),
        ),
        HostileCase(
            "several_documents_on_a_line",
            "several_documents_on_a_line.ndjson",
            "two JSON objects on one NDJSON line",
            Expected(_patients("multi-3"), (("invalid_json", 1, "$"),)),
        ),
        HostileCase(
            "nan_and_comments",
            "nan_and_comments.ndjson",
            "a NaN number; a // comment line",
            Expected(_patients("nan-3"), (("invalid_json", 1, "$"), ("invalid_json", 2, "$"))),
        ),
        HostileCase(
            "wrong_types_refused",
            "wrong_types_refused.ndjson",
            "id a number; resourceType a number; an array, a string, a number and null as "
            "lines; lastUpdated a number; ids with spaces/slashes and 65 characters",
            Expected(
                _patients("wt-ok"),
                (
                    ("invalid_id", 1, "id"),
                    ("missing_resource_type", 2, "resourceType"),
                    ("not_an_object", 3, "$"),
                    ("not_an_object", 4, "$"),
                    ("not_an_object", 5, "$"),
                    ("not_an_object", 6, "$"),
                    ("invalid_last_updated", 7, "meta.lastUpdated"),
                    ("invalid_id", 8, "id"),
                    ("invalid_id", 9, "id"),
                ),
            ),
        ),
        HostileCase(
            "wrong_types_bundle",
            "wrong_types_bundle.json",
            "batch Bundle: id a number, resourceType a number, lastUpdated a number, an id "
            "with spaces, resourceType Patient2",
            Expected(
                _patients("wtb-ok"),
                (
                    ("invalid_id", 1, f"{bad}[0].resource.id"),
                    ("missing_resource_type", 1, f"{bad}[1].resource.resourceType"),
                    ("invalid_last_updated", 1, f"{bad}[2].resource.meta.lastUpdated"),
                    ("invalid_id", 1, f"{bad}[3].resource.id"),
                    ("unknown_resource_type", 1, f"{bad}[4].resource.resourceType"),
                ),
            ),
        ),
        HostileCase(
            "wrong_types_drift",
            "wrong_types_drift.ndjson",
            "Patient.gender a number, Patient.birthDate an object (elements staging reads)",
            Expected(error=SchemaDriftError),
            cli=True,
        ),
        HostileCase(
            "unknown_resource_type",
            "unknown_resource_type.ndjson",
            "resourceType Patient2, patient (case), a made-up type, empty, missing",
            Expected(
                _patients("unk-ok"),
                (
                    ("unknown_resource_type", 1, "resourceType"),
                    ("unknown_resource_type", 2, "resourceType"),
                    ("unknown_resource_type", 3, "resourceType"),
                    ("missing_resource_type", 4, "resourceType"),
                    ("missing_resource_type", 5, "resourceType"),
                ),
            ),
        ),
        HostileCase(
            "missing_ids",
            "missing_ids.ndjson",
            "id absent, empty, null",
            Expected(
                _patients("mid-ok"),
                (("missing_id", 1, "id"), ("missing_id", 2, "id"), ("missing_id", 3, "id")),
            ),
        ),
        HostileCase(
            "missing_ids_bundle",
            "missing_ids_bundle.json",
            "collection Bundle: no id and no fullUrl; no id with a urn:uuid fullUrl; id 0",
            Expected(
                _patients("9d7c1f2e-0000-4000-8000-000000000001"),
                (
                    ("missing_id", 1, f"{bad}[0].resource.id"),
                    ("invalid_id", 1, f"{bad}[2].resource.id"),
                ),
            ),
        ),
        HostileCase(
            "duplicate_ids",
            "duplicate_ids.ndjson",
            "one id three times with different content and versions; one id twice with the "
            "same version and timestamp but different content",
            Expected(_patients("dup-1", "dup-2"), versions={("Patient", "dup-1"): "2"}),
        ),
        HostileCase(
            "duplicate_ids_bundle",
            "duplicate_ids_bundle.json",
            "one id twice in a Bundle, the newer version first",
            Expected(_patients("dup-3"), versions={("Patient", "dup-3"): "3"}),
        ),
        *[
            HostileCase(
                f"bundle_type_{kind}",
                f"bundle_type_{kind}.json",
                f"Bundle.type {what}",
                Expected(refused=(("unsupported_bundle_type", 1, "Bundle.type"),)),
            )
            for kind, what in (
                ("document", "document (not a type fhir-elt loads)"),
                ("message", "message"),
                ("misspelled", "Transaction (wrong case)"),
                ("missing", "absent"),
                ("not_a_string", "an array"),
            )
        ],
        HostileCase(
            "bundle_entry_not_a_list",
            "bundle_entry_not_a_list.json",
            "Bundle.entry an object",
            Expected(refused=(("invalid_bundle", 1, "Bundle.entry"),)),
        ),
        HostileCase(
            "bundle_bad_entries",
            "bundle_bad_entries.json",
            "searchset: include and outcome entries; search a string; mode an array; an entry "
            "without resource; a resource that is a string; an entry that is a string",
            Expected(
                _patients("be-ok"),
                (
                    ("invalid_bundle", 1, f"{bad}[3].search"),
                    ("invalid_bundle", 1, f"{bad}[4].search"),
                    ("bundle_entry_without_resource", 1, f"{bad}[5].resource"),
                    ("not_an_object", 1, f"{bad}[6].resource"),
                    ("invalid_bundle", 1, f"{bad}[7]"),
                ),
            ),
        ),
        HostileCase(
            "bundle_on_ndjson_lines",
            "bundle_on_ndjson_lines.ndjson",
            "Bundles on NDJSON lines: a document, a type that is an object, a collection "
            "with an unknown resource type",
            Expected(
                _patients("bl-ok"),
                (
                    ("unsupported_bundle_type", 1, "Bundle.type"),
                    ("unsupported_bundle_type", 2, "Bundle.type"),
                    ("unknown_resource_type", 3, f"{bad}[1].resource.resourceType"),
                ),
            ),
        ),
        HostileCase(
            "dangling_references",
            "dangling_references.json",
            "references to a urn:uuid outside the Bundle, to a Patient never delivered, and "
            "a reference that is not a reference",
            Expected(
                _patients("ref-p1") | {("Observation", f"ref-o{number}") for number in range(1, 5)},
                references={
                    ("Observation", "ref-o1"): "Patient/ref-p1",
                    ("Observation", "ref-o2"): "urn:uuid:0b7e7b7a-0000-4000-8000-0000000000ff",
                    ("Observation", "ref-o3"): "Patient/never-delivered",
                    ("Observation", "ref-o4"): f"{MARKER} not a reference at all",
                },
            ),
        ),
        HostileCase(
            "invalid_last_updated",
            "invalid_last_updated.ndjson",
            "lastUpdated: a word, no time zone, before year 1 in UTC, 30 February; year 999",
            Expected(
                _patients("lu-ok"),
                tuple(("invalid_last_updated", line, "meta.lastUpdated") for line in range(1, 5)),
            ),
        ),
        HostileCase(
            "odd_but_valid_json",
            "odd_but_valid_json.ndjson",
            "NUL, BEL, right-to-left mark and emoji in strings; a 30-digit integer; "
            "meta.versionId an object; extensions and contained of the wrong kinds",
            Expected(_patients("odd-1", "odd-2", "odd-3", "odd-4")),
        ),
        HostileCase("empty_ndjson", "empty.ndjson", "an empty file", Expected()),
        HostileCase(
            "blank_lines",
            "blank_lines.ndjson",
            "blank, whitespace-only and CRLF lines",
            Expected(_patients("blank-1")),
        ),
        HostileCase(
            "empty_json",
            "empty.json",
            "an empty .json file",
            Expected(refused=(("invalid_json", 1, "$"),)),
        ),
        HostileCase(
            "top_level_array",
            "top_level_array.json",
            "a .json file holding an array of resources",
            Expected(refused=(("not_an_object", 1, "$"),)),
        ),
    ]


def all_cases(scale: int = 1) -> list[HostileCase]:
    """Every case; ``scale`` multiplies the size of the generated big ones."""
    from tests.hostile.build import generated_cases

    return [*_static(), *generated_cases(scale)]
