"""Scan throughput: ``fakescope scan`` of a folder of JPEGs, whole process and in-process, ``fast`` vs seed-cnn.

Whole process = ``python -m fakescope.cli scan DIR --model M --json`` from start to exit (interpreter start,
imports, model load, file discovery, decoding, inference and output), timed from outside: images / wall seconds.
Its CPU time (user + system, decode workers included) is reported too: on a busy machine it is steadier than the
wall time. In-process = ``fakescope.scanning.scan`` after imports, models loaded. A seed-cnn checkpoint with random
weights (same input size) is the baseline: speed does not depend on weight values. Runs alternate A B A B.

    python benchmarks/bench_scan.py --data ../data/cifake/test --rounds 5
    python benchmarks/bench_scan.py --data ../data/cifake/test --rounds 3 --bf16 --no-baseline --out /tmp/s.json
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fakescope.data import expand_paths
from fakescope.detector import Detector
from fakescope.io import write_json
from fakescope.models import ModelSpec, Net, save_checkpoint
from fakescope.scanning import scan


def whole_process(data: str, model: str, extra: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ``fakescope scan`` process, its worker processes included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fakescope.cli", "scan", data, "--model", model, "--json", *extra],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def in_process(data: str, det: Detector, bf16: bool) -> float:
    t0 = time.perf_counter()
    rows = scan([data], det, bf16=bf16)
    dt = time.perf_counter() - t0
    assert not any(r.error for r in rows)
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of images (e.g. cifake/test: 5,000 JPEGs)")
    ap.add_argument("--model", default="fast")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bf16", action="store_true", help="scan with --bf16 (opt-in bfloat16 inference)")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the seed-cnn baseline")
    ap.add_argument("--out", default="benchmarks/results/scan.json")
    args = ap.parse_args()
    n = len(expand_paths([args.data])[0])
    extra = ["--bf16"] if args.bf16 else []
    with tempfile.TemporaryDirectory() as tmp:
        models = {args.model: args.model}
        if args.baseline:
            torch.manual_seed(0)
            models["seed-cnn"] = str(save_checkpoint(Net(ModelSpec(arch="seed-cnn")).eval(), Path(tmp) / "seed-cnn"))
        dets = {k: Detector.load(m) for k, m in models.items()}
        whole: dict[str, list[tuple[float, float]]] = {k: [] for k in models}
        inproc: dict[str, list[float]] = {k: [] for k in models}
        whole_process(args.data, args.model, extra)  # warm-up (page cache, bytecode)
        for r in range(args.rounds):
            for k in models:
                whole[k].append(whole_process(args.data, models[k], extra))
                inproc[k].append(in_process(args.data, dets[k], args.bf16))
            print(f"round {r}: " + "  ".join(f"{k}: {n / whole[k][-1][0]:.0f} img/s whole ({whole[k][-1][1]:.2f} "
                                               f"CPU s), {n / inproc[k][-1]:.0f} in-process" for k in models),
                  flush=True)
    res = {"images": n, "data": args.data, "bf16": args.bf16, "threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "machine": platform.platform(), "processor": platform.processor()}
    for k in models:
        walls = [w for w, _ in whole[k]]
        res[k] = {"whole_process_img_per_s": n / statistics.median(walls),
                  "in_process_img_per_s": n / statistics.median(inproc[k]),
                  "whole_seconds": walls, "whole_cpu_seconds": [c for _, c in whole[k]],
                  "in_process_seconds": inproc[k]}
    if args.baseline:
        res["ratio_in_process_vs_seed_cnn"] = (res[args.model]["in_process_img_per_s"]
                                               / res["seed-cnn"]["in_process_img_per_s"])
    write_json(args.out, res)
    for k in models:
        print(f"{k}: {res[k]['whole_process_img_per_s']:.0f} img/s whole process "
              f"({statistics.median(res[k]['whole_cpu_seconds']):.2f} CPU s), "
              f"{res[k]['in_process_img_per_s']:.0f} img/s in process (median of {args.rounds})")
    if args.baseline:
        print(f"{args.model} / seed-cnn in-process throughput: {res['ratio_in_process_vs_seed_cnn']:.2f}x")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
