"""Scan throughput: ``fakescope scan`` of a folder of JPEGs, whole process and in-process, ``fast`` vs seed-cnn.

Whole process = ``python -m fakescope.cli scan DIR --model M --json`` from start to exit (interpreter start,
imports, model load, file discovery, decoding, inference and output). In-process = ``fakescope.scan.scan``
after imports. A seed-cnn checkpoint with random weights (same input size) is the baseline: speed does not
depend on weight values. Runs alternate A B A B.

    python benchmarks/bench_scan.py --data ../data/cifake/test --rounds 5
"""

from __future__ import annotations

import argparse
import os
import platform
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


def whole_process(data: str, model: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fakescope.cli", "scan", data, "--model", model, "--json"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def in_process(data: str, det: Detector) -> float:
    t0 = time.perf_counter()
    rows = scan([data], det)
    dt = time.perf_counter() - t0
    assert not any(r.error for r in rows)
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of images (e.g. cifake/test: 5,000 JPEGs)")
    ap.add_argument("--model", default="fast")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/scan.json")
    args = ap.parse_args()
    n = len(expand_paths([args.data])[0])
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        seed = str(save_checkpoint(Net(ModelSpec(arch="seed-cnn")).eval(), Path(tmp) / "seed-cnn"))
        dets = {args.model: Detector.load(args.model), "seed-cnn": Detector.load(seed)}
        models = {args.model: args.model, "seed-cnn": seed}
        whole: dict[str, list[float]] = {k: [] for k in models}
        inproc: dict[str, list[float]] = {k: [] for k in models}
        whole_process(args.data, args.model)  # warm-up (page cache, bytecode)
        for r in range(args.rounds):
            for k in models:
                whole[k].append(whole_process(args.data, models[k]))
                inproc[k].append(in_process(args.data, dets[k]))
            print(f"round {r}: " + "  ".join(f"{k}: {n / whole[k][-1]:.0f} img/s whole, "
                                               f"{n / inproc[k][-1]:.0f} in-process" for k in models), flush=True)
    res = {"images": n, "data": args.data, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "machine": platform.platform(), "processor": platform.processor()}
    for k in models:
        res[k] = {"whole_process_img_per_s": n / statistics.median(whole[k]),
                  "in_process_img_per_s": n / statistics.median(inproc[k]),
                  "whole_seconds": whole[k], "in_process_seconds": inproc[k]}
    speed = {k: res[k]["in_process_img_per_s"] for k in models}
    res["ratio_in_process_vs_seed_cnn"] = speed[args.model] / speed["seed-cnn"]
    write_json(args.out, res)
    for k in models:
        print(f"{k}: {res[k]['whole_process_img_per_s']:.0f} img/s whole process, "
              f"{res[k]['in_process_img_per_s']:.0f} img/s in process (median of {args.rounds})")
    print(f"{args.model} / seed-cnn in-process throughput: {res['ratio_in_process_vs_seed_cnn']:.2f}x -> {args.out}")


if __name__ == "__main__":
    main()
