"""Options accepted by :func:`loaders.synthetic.generate` and the summary it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

Format = Literal["ndjson", "bundle"]
FORMATS: tuple[str, ...] = ("ndjson", "bundle")


@dataclass(frozen=True, slots=True)
class GenerateOptions:
    """What to generate and where to write it.

    Attributes:
        patients: Number of patients (>= 1).
        seed: Seed of every random stream; same seed + as_of + options = identical bytes.
        out: Output directory, created if missing.
        fmt: ``"ndjson"`` (one file per resource type) or ``"bundle"`` (one transaction
            Bundle per patient).
        defect_rate: Fraction (0..1) of eligible resources given a planted defect.
        as_of: Timezone-aware datetime the data is "current" as of; ``None`` means now
            (UTC, truncated to the second). Sub-second precision is dropped.
    """

    patients: int = 1000
    seed: int = 42
    out: Path = field(default_factory=lambda: Path("demo_data"))
    fmt: Format = "ndjson"
    defect_rate: float = 0.0
    as_of: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.patients, bool) or not isinstance(self.patients, int):
            raise ValueError(f"patients must be an integer, got {self.patients!r}")
        if self.patients < 1:
            raise ValueError(f"patients must be >= 1, got {self.patients}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {', '.join(FORMATS)}; got {self.fmt!r}")
        rate = self.defect_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"defect_rate must be a number between 0 and 1, got {rate!r}")
        if not isinstance(self.out, Path):
            object.__setattr__(self, "out", Path(self.out))
        if self.as_of is not None:
            if not isinstance(self.as_of, datetime):
                raise ValueError(f"as_of must be a datetime or None, got {self.as_of!r}")
            if self.as_of.tzinfo is None or self.as_of.utcoffset() is None:
                raise ValueError("as_of must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")


@dataclass(frozen=True, slots=True)
class GenerationSummary:
    """What a :func:`loaders.synthetic.generate` run wrote.

    Attributes:
        counts_by_type: Resources written per resourceType (every type, zeros included).
        total_resources: Sum of ``counts_by_type``.
        files: Data files written, in write order (metadata files like ``_defects.json``
            are not included).
        defects_by_kind: Planted defects per kind (empty when ``defect_rate`` is 0).
        defects_manifest: Path of ``_defects.json``, or ``None`` when no defects were asked for.
        seconds: Wall-clock duration of the run.
    """

    counts_by_type: dict[str, int]
    total_resources: int
    files: list[Path]
    defects_by_kind: dict[str, int]
    defects_manifest: Path | None
    seconds: float
