"""Read FHIR resources from files: NDJSON (plain or gzip) and Bundles, one file or a directory."""

from loaders.files.discover import InputFile, InputKind, discover_input_files
from loaders.files.reader import FileItem, iter_file_items

__all__ = ["FileItem", "InputFile", "InputKind", "discover_input_files", "iter_file_items"]
