"""``fakescope serve`` options."""

from __future__ import annotations

import argparse


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="web app and HTTP API (needs: pip install \"fakescope[serve]\")")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", action="append", help="bundled name or checkpoint path; repeat (default: every "
                   "bundled model)")
    p.add_argument("--max-upload-mb", type=float, default=20, dest="max_upload_mb",
                   help="largest request body accepted, in MB (default 20)")
    p.set_defaults(run=lambda args: _serve(args))


def _serve(args: argparse.Namespace) -> int:
    from ..serve import run_server

    return run_server(args.host, args.port, args.model, args.max_upload_mb)
