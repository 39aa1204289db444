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


def add_pack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="decode an image folder once into memory-mapped shards (train --data SHARDS/)")
    p.add_argument("source", help="CIFAKE layout (its --split), a two-class folder or class folders")
    p.add_argument("--out", required=True, help="new folder for the shards and manifest.json")
    p.add_argument("--task", choices=["synthetic", "classify"], default="synthetic",
                   help="synthetic: two classes, REAL first; classify: one class per sub-folder")
    p.add_argument("--image-size", type=int, default=32, dest="image_size",
                   help="side of the square images stored (train with the same --image-size)")
    p.add_argument("--split", default="train", help="sub-folder of a CIFAKE layout to pack (default train)")
    p.add_argument("--shard-images", type=int, dest="shard_images",
                   help="images per shard (default: 256 MiB of pixels, 87,381 images at 32x32)")
    p.add_argument("--workers", type=int, help="decode processes (default: up to 8, one per CPU)")
    p.add_argument("--seed", type=int, default=0, help="seed of the one shuffle of the files before packing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_pack)


def run_pack(args: argparse.Namespace) -> int:
    """``fakescope pack``: decodes with a progress bar, prints what the manifest holds."""
    import time

    from ..data.shards import pack
    from ..progress import Progress

    bar: list[Progress] = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(Progress(total, "packing", disable=args.quiet).__enter__())
        bar[0].update(done - bar[0].n)

    t0 = time.perf_counter()
    try:
        m = pack(args.source, args.out, args.task, args.image_size, args.split, args.shard_images, args.workers,
                 args.seed, progress=progress)
    finally:
        if bar:
            bar[0].__exit__(None, None, None)
    seconds = time.perf_counter() - t0
    print(f"packed {m['total']} images {m['counts']} into {len(m['shards'])} shard(s) in {args.out} "
          f"({seconds:.1f}s, {m['total'] / max(seconds, 1e-9):.0f} images/s); {m['n_skipped']} unreadable skipped",
          file=sys.stderr)
    return 0
