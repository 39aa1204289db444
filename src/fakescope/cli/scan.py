"""``fakescope scan``: its options, the process-wide settings the CLI owns, printing the rows."""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
from typing import TYPE_CHECKING

from ..models.checkpoint import list_bundled

if TYPE_CHECKING:
    from ..scanning.output import ScanRows, Verdict


def prepare_scan_process() -> None:
    """Process-wide settings for ``fakescope scan`` (the CLI owns its process; ``scan()`` never changes them).

    OpenMP threads that sleep when idle instead of spinning: decode workers or any other busy process then keep
    their CPU (under contention a spinning second thread halved scan throughput). Read when torch loads OpenMP,
    which the scan does later; an ``OMP_WAIT_POLICY`` already set wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    retain_freed_memory()


def retain_freed_memory(limit: int = 256 << 20) -> bool:
    """Ask glibc to keep freed blocks (up to ``limit`` bytes) for reuse instead of returning them to the OS.

    By default every block over 128 KB is mapped afresh, so each batch's activations are page-faulted in again:
    a third of the CPU time of scoring 32x32 images. Only the CLI calls this (it owns its process); False where
    the C library has no ``mallopt`` (not glibc).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, limit))


def run_scan(paths: list[str], models: list[str], threshold: float | None = None, as_json: bool = False,
             as_csv: bool = False, output: str | None = None, resume: bool = False, save: list[str] | None = None,
             max_rows: int = 60, workers: int | None = None, chunk: int = 512, bf16: bool = False,
             engine: str = "auto", shard: str | None = None) -> int:
    """Scan and print; returns the exit code (1 when any file could not be read).

    A progress bar on stderr when it is a terminal (not while rows stream to a terminal on stdout); after the
    rows, one summary line on stderr, and one more counting the files in folders that were skipped and why.
    """
    from ..io import write_text
    from ..progress import counter
    from ..scanning.output import render_table, summarise, summarise_skipped, to_csv, to_jsonl
    from ..scanning.scan import scan
    from ..scanning.shard import parse_shard, write_part_manifest

    part = parse_shard(shard) if shard else None
    parts = [t for t in (output, *(save or [])) if t] if part else []  # each gets a PART.shard.json sidecar
    prepare_scan_process()
    header = [True]
    streaming = as_json or as_csv

    def stream(rows: list[Verdict]) -> None:
        for t in parts if header[0] else []:  # the scan has started: its parts are unfinished until it ends
            write_part_manifest(t, part, paths, models, complete=False)
        if as_json:
            sys.stdout.write(to_jsonl(rows))
        elif as_csv:
            text = to_csv(rows)
            sys.stdout.write(text if header[0] else text.split("\n", 1)[1])
        header[0] = False
        sys.stdout.flush()

    bar = sys.stderr.isatty() and not (streaming and sys.stdout.isatty())
    if engine == "ray":  # the files are scored by Predictor actors on a Ray cluster (scanning/ray.py)
        rows = _scan_on_ray(paths, models, threshold, output, resume, chunk, bf16, part)
        stream(rows)
    else:
        with counter("scanning", disable=not bar) as tick:
            rows = scan(paths, models, threshold=threshold, output=output, resume=resume, workers=workers,
                        chunk=chunk, on_rows=stream if (streaming or parts) else None, bf16=bf16, engine=engine,
                        progress=tick, shard=part)
    if not streaming:
        render_table(rows, max_rows)
    for target in save or []:
        write_text(target, to_csv(rows) if target.endswith(".csv") else to_jsonl(rows))
    for t in parts:
        write_part_manifest(t, part, paths, models, complete=True)
    print(summarise(rows), file=sys.stderr)
    skipped = summarise_skipped(rows.skipped)
    if skipped:
        print(skipped, file=sys.stderr)
    return 1 if any(r.error for r in rows) else 0


def probability(text: str) -> float:
    """argparse type of ``--threshold``: a probability in [0, 1] (a bad one exits 2 with a clear message)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1] (e.g. 0.5, not 50), got {text}")
    return value


def _scan_on_ray(paths: list[str], models: list[str], threshold: float | None, output: str | None, resume: bool,
                 chunk: int, bf16: bool, part: tuple[int, int] | None) -> ScanRows:
    """``--engine ray``: all rows at the end (``--output`` is written then, atomically; no ``--resume``)."""
    from pathlib import Path

    from ..io import write_text
    from ..scanning.output import to_jsonl
    from ..scanning.ray import scan_ray

    if resume:
        raise ValueError("--engine ray writes --output once, at the end: it cannot --resume (split the scan with "
                         "--shard I/N into parts that can be rerun)")
    if output and Path(output).exists():
        raise FileExistsError(f"{output} exists; remove it or choose another --output")
    rows = scan_ray(paths, models, threshold=threshold, batch_size=chunk, bf16=bf16, shard=part)
    if output:
        write_text(output, to_jsonl(rows))
    return rows


def add_scan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="verdicts for files, folders and globs")
    p.add_argument("paths", nargs="+", help="files, folders (recursive) or glob patterns")
    p.add_argument("--model", action="append", help=f"bundled name ({', '.join(list_bundled())}) or checkpoint "
                   "path; repeat to run several models (e.g. both tasks) in one scan")
    p.add_argument("--task", choices=["synthetic", "adversarial", "both"],
                   help="pick the bundled model(s) for a task when --model is not given")
    p.add_argument("--threshold", type=probability, help="P(label 1) from which a file is FAKE/attacked, in [0, 1] "
                   "(default: each model's calibrated threshold)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON lines on stdout instead of the table")
    fmt.add_argument("--csv", action="store_true", help="CSV on stdout instead of the table")
    p.add_argument("--output", help="append rows to this .jsonl as the scan goes (see --resume)")
    p.add_argument("--resume", action="store_true", help="skip files already in --output")
    p.add_argument("--save", action="append", default=[], help="also write all rows to FILE (.csv or .json[l])")
    p.add_argument("--max-rows", type=int, default=60, help="rows shown in the table (all go to files)")
    p.add_argument("--workers", type=int, help="decode processes (default: half the CPUs when there is more than "
                   "one chunk, else 0 = decode in this process)")
    p.add_argument("--chunk", type=int, default=512, help="files decoded and written per step")
    p.add_argument("--engine", choices=["auto", "torch", "onnx", "ray"], default="auto",
                   help="auto: ONNX Runtime when installed and it has the architecture (same scores to ~1e-6, "
                   "starts without importing torch), else torch; ray: score on a Ray cluster (RAY_ADDRESS, else a "
                   "local one; pip install 'fakescope[ray]'), batches of --chunk files")
    p.add_argument("--bf16", action="store_true", help="bfloat16 inference: faster on CPUs with AVX-512-BF16 or "
                   "AMX, but scores move by up to ~0.03 and about 1 verdict in 2,500 flips (default float32)")
    p.add_argument("--shard", metavar="I/N", help="scan only shard I of N (0-based) of the files: a stable split by "
                   "path hash, for array jobs; --output/--save files get a .shard.json sidecar; fakescope merge "
                   "joins the parts")
    p.set_defaults(run=run_scan_command)


def run_scan_command(args: argparse.Namespace) -> int:
    """``fakescope scan``: the bundled model(s) for ``--task`` unless ``--model`` names them."""
    models = args.model or task_models(args.task)
    return run_scan(args.paths, models, threshold=args.threshold, as_json=args.json, as_csv=args.csv,
                    output=args.output, resume=args.resume, save=args.save, max_rows=args.max_rows,
                    workers=args.workers, chunk=args.chunk, bf16=args.bf16, engine=args.engine, shard=args.shard)


def add_demo(sub: argparse._SubParsersAction) -> None:
    """``fakescope demo``: the README's first command."""
    p = sub.add_parser("demo", help="scan the bundled sample images with the bundled models")
    p.add_argument("--model", default="fast", help="bundled name or checkpoint path (default fast)")
    p.add_argument("--out", default="fakescope-demo", help="folder for results.jsonl and results.csv")
    p.set_defaults(run=_demo)


def _demo(args: argparse.Namespace) -> int:
    from ..scanning.demo import run_demo


    return run_demo(args.model, args.out)


def task_models(task: str | None) -> list[str]:
    bundled = list_bundled()
    if task in (None, "synthetic"):
        return ["fast"]
    wanted = {"adversarial": ["adversarial"], "both": ["fast", "adversarial"]}[task]
    missing = [m for m in wanted if m not in bundled]
    if missing:
        raise ValueError(f"no bundled model for {missing}; pass --model PATH (bundled: {', '.join(bundled)})")
    return wanted
