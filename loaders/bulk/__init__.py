"""FHIR Bulk Data Access (STU2) ``$export``: kick-off, polling, manifests, downloads, merge."""
