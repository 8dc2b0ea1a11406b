"""The package version (one place: pyproject.toml reads it, and so do the reports)."""

__version__ = "0.1.0"
