"""The one source of the package's version: ``pyproject.toml`` reads it (``dynamic = ["version"]``)."""

__version__ = "0.1.0"
