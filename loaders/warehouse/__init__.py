"""The warehouse side of a load: raw table rows, version filtering, dlt merge, run records."""
