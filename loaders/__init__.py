"""fhir-elt loaders: extract FHIR R4 resources, land them unchanged, merge them into raw tables."""

__version__ = "0.1.0"
