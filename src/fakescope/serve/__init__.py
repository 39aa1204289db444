"""Web app and HTTP API: a FastAPI app over the same ``Detector``/``scan_iter``/``decode_image`` as the CLI.

FastAPI, python-multipart and uvicorn are optional (``pip install "fakescope[serve]"``): nothing here imports
them until ``create_app`` or ``run_server`` is called, so the rest of fakescope works without them.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..inference.scorer import Detector

INSTALL_HINT = 'the web app needs FastAPI, python-multipart and uvicorn: pip install "fakescope[serve]"'


class ServeDependencyError(ImportError):
    """An optional dependency of the web app is missing; the message says how to install it."""


def missing_dependencies(server: bool = False) -> list[str]:
    """Distribution names of the missing web-app dependencies (``server``: uvicorn too)."""
    missing = [] if importlib.util.find_spec("fastapi") else ["fastapi"]
    if not (importlib.util.find_spec("python_multipart") or importlib.util.find_spec("multipart")):
        missing.append("python-multipart")
    if server and not importlib.util.find_spec("uvicorn"):
        missing.append("uvicorn")
    return missing


def _require(server: bool = False) -> None:
    missing = missing_dependencies(server)
    if missing:
        raise ServeDependencyError(f"{INSTALL_HINT} (missing: {', '.join(missing)})")


def create_app(models: Sequence[str | Detector] | None = None, max_upload_mb: float = 20) -> FastAPI:
    """The FastAPI app; ``models`` (bundled names, checkpoint paths or Detectors) default to every bundled one."""
    _require()
    from .app import create_app as _create_app

    return _create_app(models, max_upload_mb)


def run_server(host: str = "127.0.0.1", port: int = 8000, models: Sequence[str] | None = None,
               max_upload_mb: float = 20) -> int:
    """``fakescope serve``: load the models, then run uvicorn until interrupted; returns an exit code."""
    try:
        _require(server=True)
    except ServeDependencyError as e:
        print(f"fakescope serve: error: {e}", file=sys.stderr)
        return 2
    import uvicorn

    app = create_app(models, max_upload_mb)
    names = ", ".join(d.name for d in app.state.detectors)
    print(f"fakescope web app on http://{host}:{port}/  (models: {names}; Ctrl-C stops it)", file=sys.stderr)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("note: the app has no authentication; anyone who can reach this address can use it", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="info")
    return 0


__all__ = ["INSTALL_HINT", "ServeDependencyError", "create_app", "missing_dependencies", "run_server"]
