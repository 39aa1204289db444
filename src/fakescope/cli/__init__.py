"""The ``fakescope`` command line (``main``); one module per command group, nothing heavy imported at start-up."""

from .main import main

__all__ = ["main"]
