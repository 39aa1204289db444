"""The one version string (``pyproject.toml`` reads it)."""

__version__ = "0.1.0"
