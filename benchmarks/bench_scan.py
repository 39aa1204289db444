"""Scan throughput: ``fakescope scan`` of a folder of JPEGs, whole process and in-process, ``fast`` vs seed-cnn.

Whole process = ``python -m fakescope.cli scan DIR --model M --json`` from start to exit (interpreter start,
imports, model load, file discovery, decoding, inference and output), timed from outside: images / wall seconds.
Its CPU time (user + system, decode workers included) is reported too: on a busy machine it is steadier than the
wall time. In-process = ``fakescope.scanning.scan`` after imports, models loaded. A seed-cnn checkpoint with random
weights (same input size) is the baseline: speed does not depend on weight values. Each runs with each engine
(``--engine onnx``: ONNX Runtime, no torch import; ``--engine torch``). Runs alternate A B A B.

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
from fakescope.inference.onnx_engine import OnnxDetector
from fakescope.inference.scorer import Detector
from fakescope.io import write_json
from fakescope.models import ModelSpec, Net, save_checkpoint
from fakescope.scanning.scan import scan


def whole_process(data: str, model: str, extra: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ``fakescope scan`` process, its worker processes included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fakescope.cli", "scan", data, "--model", model, "--json", *extra],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def in_process(data: str, det: object, bf16: bool) -> float:
    t0 = time.perf_counter()
    rows = scan([data], det, bf16=bf16)
    dt = time.perf_counter() - t0
    assert not any(r.error for r in rows)
    return dt


def load(model: str, engine: str) -> object:
    return OnnxDetector.load(model) if engine == "onnx" else Detector.load(model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of images (e.g. cifake/test: 5,000 JPEGs)")
    ap.add_argument("--model", default="fast")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--engines", nargs="+", default=["onnx", "torch"], choices=["onnx", "torch"],
                    help="inference engines to compare (--engine of fakescope scan)")
    ap.add_argument("--bf16", action="store_true", help="scan with --bf16 (torch engine only)")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the seed-cnn baseline")
    ap.add_argument("--out", default="benchmarks/results/scan.json")
    args = ap.parse_args()
    n = len(expand_paths([args.data])[0])
    engines = ["torch"] if args.bf16 else args.engines
    with tempfile.TemporaryDirectory() as tmp:
        models = {args.model: args.model}
        if args.baseline:
            torch.manual_seed(0)
            models["seed-cnn"] = str(save_checkpoint(Net(ModelSpec(arch="seed-cnn")).eval(), Path(tmp) / "seed-cnn"))
        runs = {f"{k}/{e}": (m, e) for k, m in models.items() for e in engines}
        dets = {key: load(m, e) for key, (m, e) in runs.items()}
        whole: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
        inproc: dict[str, list[float]] = {k: [] for k in runs}
        whole_process(args.data, args.model, ["--engine", engines[0]])  # warm-up (page cache, bytecode)
        for r in range(args.rounds):
            for key, (m, e) in runs.items():
                whole[key].append(whole_process(args.data, m, ["--engine", e] + (["--bf16"] if args.bf16 else [])))
                inproc[key].append(in_process(args.data, dets[key], args.bf16))
            print(f"round {r}: " + "  ".join(f"{k}: {n / whole[k][-1][0]:.0f} img/s whole ({whole[k][-1][1]:.2f} "
                                               f"CPU s), {n / inproc[k][-1]:.0f} in-process" for k in runs),
                  flush=True)
    res: dict[str, object] = {"images": n, "data": args.data, "bf16": args.bf16, "threads": torch.get_num_threads(),
                              "cpu_count": os.cpu_count(), "machine": platform.platform(),
                              "processor": platform.processor()}
    for k in runs:
        walls = [w for w, _ in whole[k]]
        res[k] = {"whole_process_img_per_s": n / statistics.median(walls),
                  "in_process_img_per_s": n / statistics.median(inproc[k]),
                  "whole_seconds": walls, "whole_cpu_seconds": [c for _, c in whole[k]],
                  "in_process_seconds": inproc[k]}
    ratios = {}
    if "onnx" in engines and "torch" in engines:
        ratios["whole_onnx_vs_torch"] = (statistics.median(whole[f"{args.model}/torch"][i][0] for i in range(
            args.rounds)) / statistics.median(whole[f"{args.model}/onnx"][i][0] for i in range(args.rounds)))
    if args.baseline:
        for e in engines:
            ratios[f"in_process_vs_seed_cnn/{e}"] = (res[f"{args.model}/{e}"]["in_process_img_per_s"]
                                                    / res[f"seed-cnn/{e}"]["in_process_img_per_s"])
    res["ratios"] = ratios
    write_json(args.out, res)
    for k in runs:
        print(f"{k}: {res[k]['whole_process_img_per_s']:.0f} img/s whole process "
              f"({statistics.median(res[k]['whole_cpu_seconds']):.2f} CPU s), "
              f"{res[k]['in_process_img_per_s']:.0f} img/s in process (median of {args.rounds})")
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
