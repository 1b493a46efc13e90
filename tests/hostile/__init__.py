"""The hostile-input corpus of issue 9 (see README.md)."""
