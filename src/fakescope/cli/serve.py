"""``fakescope serve`` options: address, models, and the server's limits (one flag per ``Limits`` field)."""

from __future__ import annotations

import argparse
import os

from ..serve.limits import Limits

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def port_number(text: str) -> int:
    """A TCP port for argparse: 1-65535, or 0 for any free one."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 1-65535 (or 0: any free port), got {port}")
    return port


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="web app and HTTP API (needs: pip install \"fakescope[serve]\")",
                       description="The web app at / and the HTTP API under /api (docs at /docs).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port_number, default=8000,
                   help="port to listen on; 0 picks a free one, printed in the banner (default 8000)")
    p.add_argument("--model", action="append", help="bundled name or checkpoint path; repeat (default: every "
                   "bundled model)")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                   help="server log level; 'warning' drops the per-request access log (default info)")
    limits = p.add_argument_group("limits", "per-request budgets and queue sizes (see README: Web app and HTTP API)")
    for flag, dest, kind, default, text in Limits.flags():
        limits.add_argument(flag, dest=dest, type=kind, default=default, metavar="N", help=text)
    p.set_defaults(run=lambda args: _serve(args))


def _serve(args: argparse.Namespace) -> int:
    from dataclasses import fields

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep: the CPUs go to requests
    from ..serve import run_server

    limits = Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
    return run_server(args.host, args.port, args.model, limits=limits, log_level=args.log_level)
