"""``fakescope merge`` (join the parts of a sharded scan) and ``fakescope pack`` (decode a folder once into
memory-mapped shards for ``train --data SHARDS/``)."""

from __future__ import annotations

import argparse
import sys


def add_merge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="join the parts of a sharded scan (scan --shard I/N) into one file")
    p.add_argument("parts", nargs="+", help="part files (.jsonl or .csv), each with its PART.shard.json sidecar or "
                   "I-of-N in its name")
    p.add_argument("--out", required=True, help="merged file: .csv, else JSON lines; rows sorted by path, model")
    p.add_argument("--allow-missing", action="store_true",
                   help="write the merged file even when shards are missing or unfinished (exit code still 1)")
    p.set_defaults(run=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    """0 when every shard is there and finished; 1 (and nothing written, unless --allow-missing) otherwise."""
    from ..scanning.shard import merge

    report = merge(args.parts, args.out, allow_partial=args.allow_missing)
    print(report.describe(), file=sys.stderr)
    return 0 if report.ok else 1
