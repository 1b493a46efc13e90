"""Exceptions raised by fhir-elt.

The tree, so callers can catch at the depth they need::

    FhirEltError                    anything fhir-elt raises on purpose
    ├── ConfigError                 a setting is missing or malformed
    ├── InputError                  an input path cannot be read as FHIR files at all
    │   └── ReaderError             reading a file failed in a way the reader does not handle
    ├── LandingError                the landing zone cannot be written or read
    │   ├── LandingIntegrityError   a landing file no longer matches its manifest row
    │   └── LandingFullError        the landing zone's disk (or quota) is full
    ├── WarehouseError              the warehouse refused a merge or a query
    │   └── WarehouseLockedError    another process holds the DuckDB warehouse file open
    ├── SchemaDriftError            resources carry elements their R4 definition lacks, or
    │                               elements of another JSON kind (policy ``fail``)
    ├── ValidationPoolError         a FHIR validation worker process died (validation mode
    │                               ``sample`` or ``full``); the page was not merged
    └── ExtractError                a FHIR server could not be read (REST or Bulk)
        ├── AuthenticationError     credentials refused (bad secret/key, second 401)
        ├── AuthorizationError      a valid token lacks the scope for a resource type (403)
        ├── RequestRejected         the server refused the request itself (400/404/410/422,
        │                           or an OperationOutcome error): retrying cannot help
        ├── RetriesExhausted        transient failures (429, 5xx, timeouts, resets) outlasted
        │                           the retry budget (attempts or elapsed time)
        ├── CircuitOpenError        too many consecutive failures for one resource type
        ├── MalformedResponseError  a 2xx response that is not the JSON the request promised
        └── IncompleteWindowError   a search window's pages still miss resources after re-paging

Messages name what was wrong and where (file, line, resource type, JSON path). They never
carry a resource payload or an identifier: a resource that cannot be loaded is quarantined
with its id in the warehouse, and the message points there.
"""

from __future__ import annotations


class FhirEltError(Exception):
    """Base class of every error fhir-elt raises on purpose."""


class ConfigError(FhirEltError):
    """A setting is missing or malformed."""


class InputError(FhirEltError):
    """An input path does not exist or holds nothing fhir-elt can read."""


class ReaderError(InputError):
    """Reading one input file failed in a way the file reader does not handle (a fhir-elt bug).

    Hostile input is refused resource by resource into quarantine; this is the net under that:
    the run stops, and the message names the file, the line (or Bundle entry) reached and the
    exception's type, never its text (which could quote a value).
    """


class InputChangedError(InputError):
    """An input file changed on disk while it was being loaded (the run stops, keeping what
    was committed before)."""


class LandingError(FhirEltError):
    """The landing zone cannot be written or read."""


class LandingIntegrityError(LandingError):
    """A landing file's bytes no longer match the sha256 recorded in its manifest row."""


class LandingFullError(LandingError):
    """A landing page or manifest could not be written: no space left (or quota exceeded).

    The page being written is removed, nothing of the page is merged; pages already landed
    stay. Free space and run the command again.
    """


class WarehouseError(FhirEltError):
    """The warehouse refused a merge or a query."""


class WarehouseLockedError(WarehouseError):
    """Another process holds the DuckDB warehouse file open (DuckDB allows one writer).

    Raised by :func:`loaders.warehouse.connect.connect_warehouse`; the message names the file
    and, when DuckDB reports it, the holder's process id.
    """


class SchemaDriftError(FhirEltError):
    """Resources carry elements their FHIR R4 definition does not have (a renamed field?), or
    known elements of another JSON kind, under a ``fail`` drift policy (:mod:`loaders.drift`).

    The message names the resource type, the JSON paths and where they were seen (landing file
    or search page); never a value or an identifier.
    """


class ValidationPoolError(FhirEltError):
    """A process validating resources against ``fhir.resources.R4B`` died mid-page.

    Raised by :mod:`loaders.validation`; nothing of the page it was validating is merged.
    """


class ExtractError(FhirEltError):
    """A FHIR server could not be read.

    Messages name the resource type, the request's path template (never its identifiers or
    parameter values that could identify a patient), the status and the attempt count.
    """


class AuthenticationError(ExtractError):
    """The server or token endpoint refused the credentials (a 401 after one token refresh)."""


class AuthorizationError(ExtractError):
    """The token is valid but lacks the scope for what was asked (403)."""


class RequestRejected(ExtractError):
    """The server refused the request (400/404/410/422 or an OperationOutcome error)."""


class RetriesExhausted(ExtractError):
    """Transient failures outlasted the retry budget (attempts or elapsed time)."""


class CircuitOpenError(ExtractError):
    """A resource type failed too many times in a row; its extraction stopped."""


class MalformedResponseError(ExtractError):
    """A successful response was not the JSON (Bundle, token, ...) the request promised."""


class IncompleteWindowError(ExtractError):
    """A search window's pages still miss resources the server counts, after re-paging."""
