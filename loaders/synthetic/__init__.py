"""Synthetic FHIR R4 data: the demo, test and benchmark data of fhir-elt.

Usage::

    from loaders.synthetic import GenerateOptions, generate
    summary = generate(GenerateOptions(patients=1000, seed=42, out=Path("demo_data")))
"""

from loaders.synthetic.defects import DEFECT_KINDS
from loaders.synthetic.generator import generate
from loaders.synthetic.options import GenerateOptions, GenerationSummary
from loaders.synthetic.writers import RESOURCE_TYPES

__all__ = [
    "DEFECT_KINDS",
    "RESOURCE_TYPES",
    "GenerateOptions",
    "GenerationSummary",
    "generate",
]
