"""Scanning files and folders: one verdict per file and model (``scan``), its output formats, the demo."""
