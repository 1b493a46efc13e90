"""FHIR REST search extraction: configuration, paging, windows, cursors and backfills."""
