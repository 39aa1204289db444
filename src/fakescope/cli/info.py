"""``fakescope models`` (architectures and bundled checkpoints) and ``fakescope info`` (one checkpoint).

Both read JSON and file headers only: no torch import.
"""

from __future__ import annotations

import argparse
import json


def add_models(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("models", help="list architectures and bundled checkpoints").set_defaults(
        run=lambda args: print(list_all()) or 0)


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a checkpoint: spec, metrics, training config, data fingerprint, "
                       "hashes, parameters")
    p.add_argument("model", help="bundled name or checkpoint path")
    p.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    from ..models.checkpoint import describe_checkpoint

    print(json.dumps(describe_checkpoint(args.model), indent=2))
    return 0


def columns(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """``rows`` as lines of left-aligned columns, each as wide as its widest cell (the last one unpadded)."""
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows), default=0))]
    return [indent + "  ".join(c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)).rstrip()
            for r in rows]


def list_all() -> str:
    from ..models.checkpoint import list_bundled, read_metadata
    from ..models.registry import builtin_architectures

    lines = ["architectures:"]
    lines += columns([[n, doc] for n, doc in builtin_architectures().items()])
    lines.append("bundled checkpoints:")
    rows = [["name", "arch", "task", "test accuracy"]]
    for name in list_bundled():
        meta = read_metadata(name)
        acc = meta.get("metrics", {}).get("test_accuracy")
        rows.append([name, meta["spec"]["arch"], meta["spec"]["task"], f"{acc:.2%}" if isinstance(acc, float) else ""])
    lines += columns(rows)
    return "\n".join(lines)
