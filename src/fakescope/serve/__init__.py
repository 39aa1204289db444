"""Web app and HTTP API: a FastAPI app over the same ``Detector``/``scan_iter``/``decode_image`` as the CLI.

FastAPI, python-multipart and uvicorn are optional (``pip install "fakescope[serve]"``): nothing here imports
them until ``create_app`` or ``run_server`` is called, so the rest of fakescope works without them.
"""

from __future__ import annotations

import errno
import importlib.util
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .limits import Limits

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


def create_app(models: Sequence[str | Detector] | None = None, max_upload_mb: float | None = None,
               limits: Limits | None = None, **options: Any) -> FastAPI:
    """The FastAPI app; ``models`` (bundled names, checkpoint paths or Detectors) default to every bundled one;
    ``limits``/``options``: the budgets and queue sizes (``fakescope.serve.limits.Limits`` fields)."""
    _require()
    from .app import create_app as _create_app

    return _create_app(models, max_upload_mb, limits, **options)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port), or ``OSError`` with a message for people."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise OSError(f"cannot listen on {host}:{port}: unknown host ({e.strerror})") from None
    family, kind, proto, _name, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free; a listener is not
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        why = {errno.EADDRINUSE: "the port is already in use (another server?); choose another --port",
               errno.EACCES: "permission denied (ports below 1024 need privileges); choose another --port",
               errno.EADDRNOTAVAIL: "this machine has no such address; check --host"}.get(e.errno, e.strerror)
        raise OSError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    return sock


def run_server(host: str = "127.0.0.1", port: int = 8000, models: Sequence[str] | None = None,
               max_upload_mb: float | None = None, limits: Limits | None = None, log_level: str = "info") -> int:
    """``fakescope serve``: listen, load the models, then run uvicorn until interrupted; returns an exit code.

    The socket is bound first, so a busy port fails at once, with one line, before any model loads or the banner.
    """
    try:
        _require(server=True)
        sock = bind(host, port)
    except (ServeDependencyError, OSError) as e:
        print(f"fakescope serve: error: {e}", file=sys.stderr)
        return 2
    import uvicorn

    with sock:
        app = create_app(models, max_upload_mb, limits)
        names = ", ".join(d.name for d in app.state.detectors)
        shown = f"[{host}]" if ":" in host else host
        print(f"fakescope web app on http://{shown}:{sock.getsockname()[1]}/  (models: {names}; API docs at /docs; "
              "Ctrl-C stops it)", file=sys.stderr, flush=True)
        if host not in ("127.0.0.1", "localhost", "::1"):
            print("note: the app has no authentication; anyone who can reach this address can use it",
                  file=sys.stderr)
        server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5))
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # a second Ctrl-C during shutdown
            pass
    return 0


__all__ = ["INSTALL_HINT", "Limits", "ServeDependencyError", "bind", "create_app", "missing_dependencies",
           "run_server"]
