"""Which resources a load validates against their ``fhir.resources.R4B`` model.

``off`` validates nothing (the default), ``full`` every resource, ``sample:N`` about N percent
of them. The sample is chosen by content hash, not at random, so a rerun over the same data
validates the same resources and reports the same quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from loaders.exceptions import ConfigError

# The first 8 hex digits of a sha256 content hash, as a fraction of 16**8: where a resource
# falls in [0, 1) for sampling. Uniform over content, stable across runs and machines.
_HASH_DIGITS = 8
_HASH_RANGE = 16**_HASH_DIGITS


class ValidationKind(StrEnum):
    """How much of a load is validated."""

    OFF = "off"
    SAMPLE = "sample"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class ValidationMode:
    """A validation setting: ``off``, ``sample:N`` (N percent) or ``full``.

    Attributes:
        kind: off, sample or full.
        percent: The share validated in sample mode (0 < percent <= 100); 100 for full, 0 for
            off.
    """

    kind: ValidationKind = ValidationKind.OFF
    percent: float = 0.0

    @property
    def enabled(self) -> bool:
        """Whether anything is validated."""
        return self.kind is not ValidationKind.OFF

    def selects(self, content_hash: str) -> bool:
        """Whether the resource with this (hex sha256) content hash is validated."""
        if self.kind is ValidationKind.OFF:
            return False
        if self.kind is ValidationKind.FULL or self.percent >= 100:
            return True
        position = int(content_hash[:_HASH_DIGITS], 16) / _HASH_RANGE
        return position < self.percent / 100

    def __str__(self) -> str:
        if self.kind is ValidationKind.SAMPLE:
            return f"sample:{self.percent:g}"
        return str(self.kind)


VALIDATION_HELP = (
    "validate resources against fhir.resources.R4B before landing: off, sample:N (N percent, "
    "by content hash) or full (all cores); invalid ones are quarantined "
    "(default: FHIR_ELT_VALIDATION, else off)"
)

OFF = ValidationMode()
FULL = ValidationMode(ValidationKind.FULL, 100.0)


def parse_validation_mode(text: str) -> ValidationMode:
    """``off``, ``full`` or ``sample:N`` (0 < N <= 100, decimals allowed) as a ValidationMode.

    Raises:
        ConfigError: Anything else.
    """
    value = text.strip().lower()
    if value == ValidationKind.OFF:
        return OFF
    if value == ValidationKind.FULL:
        return FULL
    kind, _, share = value.partition(":")
    if kind == ValidationKind.SAMPLE and share:
        try:
            percent = float(share.rstrip("%"))
        except ValueError:
            percent = -1.0
        if 0 < percent <= 100:
            return ValidationMode(ValidationKind.SAMPLE, percent)
    raise ConfigError(
        f"validation must be off, full or sample:N with 0 < N <= 100 (percent), got {text!r}"
    )
