"""``fakescope models`` (architectures and bundled checkpoints) and ``fakescope info`` (one checkpoint)."""

from __future__ import annotations

import argparse
import json


def add_models(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("models", help="list architectures and bundled checkpoints").set_defaults(
        run=lambda args: print(list_all()) or 0)


def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("model", help="bundled name or checkpoint path")
    p.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    from ..inference.scorer import Detector

    print(json.dumps(Detector.load(args.model).describe(), indent=2))
    return 0


def list_all() -> str:
    from ..models import MODELS, list_bundled, read_metadata

    lines = ["architectures:"]
    lines += [f"  {n:10s} {MODELS.describe(n)}" for n in MODELS.names()]
    lines.append("bundled checkpoints:")
    for name in list_bundled():
        meta = read_metadata(name)
        acc = meta.get("metrics", {}).get("test_accuracy")
        note = f"test accuracy {acc:.2%}" if isinstance(acc, float) else ""
        lines.append(f"  {name:10s} {meta['spec']['arch']:10s} task={meta['spec']['task']:12s} {note}")
    return "\n".join(lines)
