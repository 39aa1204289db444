"""Scan throughput: ``fakescope scan`` of a folder of JPEGs, whole process and in-process, ``fast`` vs seed-cnn,
against plain PIL decoding of the same files, and the start-up of a one-image scan.

Whole process = ``python -m fakescope.cli scan DIR --model M --json`` from start to exit (interpreter start,
imports, model load, file discovery, decoding, inference and output), timed from outside: images / wall seconds.
Its CPU time (user + system, decode workers included) is reported too: on a busy machine it is steadier than the
wall time. In-process = ``fakescope.scanning.scan`` after imports, models loaded. A seed-cnn checkpoint with random
weights (same input size) is the baseline: speed does not depend on weight values. Each runs with each engine
(``--engine onnx``: ONNX Runtime, no torch import; ``--engine torch``). Runs alternate A B A B.

The decode baseline, in every round beside the scans: one process that lists the same folder and decodes every
file with plain PIL (``Image.open(f).convert("RGB")`` to a numpy array), in as many processes as this process may
use CPUs (and in one), timed from outside like the scan. ``whole_vs_pil`` = scan img/s / that img/s, round by round
(the runs sit side by side, so they share the machine's load): how close the scan, which also scores every image,
comes to only decoding. ``one_image_seconds``: ``fakescope scan ONE_FILE --json``, whole process.
``--compare-src DIR``: the default scan and the one-image scan also run from another checkout's ``src`` (e.g. the
commit before a change, ``git archive COMMIT src | tar -x -C /tmp/base``), alternating with this one.

    python benchmarks/bench_scan.py --data ../data/cifake/test --rounds 5
    python benchmarks/bench_scan.py --data ../data/cifake/test --rounds 5 --engines onnx --no-baseline  # the default
    python benchmarks/bench_scan.py --data ../data/cifake/test --rounds 7 --engines onnx --no-baseline \
        --compare-src /tmp/base/src --out benchmarks/results/scan_startup.json
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

import numpy as np
import torch

from fakescope.data import decode_many, expand_paths
from fakescope.data.decode import available_cpus
from fakescope.inference.onnx_engine import OnnxDetector
from fakescope.inference.scorer import Detector
from fakescope.io import write_json
from fakescope.models import ModelSpec, Net, save_checkpoint
from fakescope.scanning.scan import scan

PIL_DECODE = """
import os, sys
from multiprocessing import Pool
import numpy as np
from PIL import Image

def load(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).shape[0]

if __name__ == "__main__":
    root, procs = sys.argv[1], int(sys.argv[2])
    exts = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
    files = sorted(os.path.join(r, n) for r, _, ns in os.walk(root) for n in ns if n.lower().endswith(exts))
    if procs > 1:
        with Pool(procs) as pool:
            n = len(pool.map(load, files, chunksize=256))
    else:
        n = len([load(f) for f in files])
    assert n == len(files)
"""


def timed(cmd: list[str], src: str | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of it and its children) of one process; ``src``: import fakescope from there."""
    env = None if src is None else {**os.environ, "PYTHONPATH": src}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def whole_process(data: str, model: str, extra: list[str], src: str | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ``fakescope scan`` process, its worker processes included."""
    return timed([sys.executable, "-m", "fakescope.cli", "scan", data, "--model", model, "--json", *extra], src)


def pil_decode(data: str, procs: int) -> tuple[float, float]:
    """(wall, CPU) seconds of plain PIL decoding every image of ``data`` in ``procs`` processes, whole process."""
    return timed([sys.executable, "-c", PIL_DECODE, data, str(procs)])


def one_image(path: str, src: str | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fakescope scan PATH --json``, whole process (the default engine)."""
    return timed([sys.executable, "-m", "fakescope.cli", "scan", path, "--json"], src)


def in_process(data: str, det: object, bf16: bool) -> float:
    t0 = time.perf_counter()
    rows = scan([data], det, bf16=bf16)
    dt = time.perf_counter() - t0
    assert not any(r.error for r in rows)
    return dt


def load(model: str, engine: str) -> object:
    return OnnxDetector.load(model) if engine == "onnx" else Detector.load(model)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of images (e.g. cifake/test: 5,000 JPEGs)")
    ap.add_argument("--model", default="fast")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--engines", nargs="+", default=["onnx", "torch"], choices=["onnx", "torch"],
                    help="inference engines to compare (--engine of fakescope scan)")
    ap.add_argument("--bf16", action="store_true", help="scan with --bf16 (torch engine only)")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the seed-cnn baseline")
    ap.add_argument("--compare-src", dest="compare_src", metavar="DIR",
                    help="also run the default and one-image scans with fakescope imported from DIR (another src/)")
    ap.add_argument("--out", default="benchmarks/results/scan.json")
    return ap.parse_args()


def score_cpu(det: object, images: np.ndarray, bf16: bool) -> float:
    """CPU seconds (all threads of this process) of scoring already decoded images: the inference alone."""
    t0 = time.process_time()
    det.scores(images, bf16=bf16)  # type: ignore[attr-defined]
    return time.process_time() - t0


def run_rounds(args: argparse.Namespace, runs: dict[str, tuple[str, str]], dets: dict[str, object], n: int,
               files: list[str], engines: list[str]) -> dict[str, list]:
    """Every measurement, ``args.rounds`` times, alternating: the PIL baselines, the one-image scan, each scan."""
    cpus = available_cpus()
    first = files[0]
    images = decode_many(files, 32, workers=0)[0]
    m: dict[str, list] = {"pil_1": [], f"pil_{cpus}": [], "one_image": [], **{f"whole/{k}": [] for k in runs},
                          **{f"inproc/{k}": [] for k in runs}, **{f"score/{k}": [] for k in runs}}
    whole_process(args.data, args.model, ["--engine", engines[0]])  # warm-up (page cache, bytecode)
    for r in range(args.rounds):
        m["pil_1"].append(pil_decode(args.data, 1))
        m[f"pil_{cpus}"].append(pil_decode(args.data, cpus))
        m["one_image"].append(one_image(first))
        if args.compare_src:
            m.setdefault("one_image_base", []).append(one_image(first, args.compare_src))
            m.setdefault("whole_base", []).append(whole_process(args.data, args.model, [], args.compare_src))
        for key, (model, engine) in runs.items():
            flags = ["--engine", engine] + (["--bf16"] if args.bf16 else [])
            m[f"whole/{key}"].append(whole_process(args.data, model, flags))
            m[f"inproc/{key}"].append(in_process(args.data, dets[key], args.bf16))
            m[f"score/{key}"].append(score_cpu(dets[key], images, args.bf16))
        print(f"round {r}: PIL x{cpus} {n / m[f'pil_{cpus}'][-1][0]:.0f} img/s, one image "
              f"{m['one_image'][-1][0]:.2f} s  " + "  ".join(
                  f"{k}: {n / m[f'whole/{k}'][-1][0]:.0f} img/s whole ({m[f'whole/{k}'][-1][1]:.2f} CPU s), "
                  f"{n / m[f'inproc/{k}'][-1]:.0f} in-process" for k in runs), flush=True)
    return m


def summarise(args: argparse.Namespace, m: dict[str, list], runs: dict[str, tuple[str, str]], engines: list[str],
              n: int) -> dict[str, object]:
    pil_keys = [k for k in m if k.startswith("pil_")]
    res: dict[str, object] = {
        "images": n, "data": args.data, "bf16": args.bf16, "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "cpus_available": available_cpus(), "machine": platform.platform(),
        "processor": platform.processor(), "rounds": args.rounds,
        "one_image_seconds": [w for w, _ in m["one_image"]], "one_image_cpu_seconds": [c for _, c in m["one_image"]],
        "one_image_median_s": statistics.median(w for w, _ in m["one_image"]),
        **{f"pil_decode_{k[4:]}proc_img_per_s": n / statistics.median(w for w, _ in m[k]) for k in pil_keys},
        "pil_decode_seconds": {k[4:]: [w for w, _ in m[k]] for k in pil_keys},
        "pil_decode_cpu_seconds": {k[4:]: [c for _, c in m[k]] for k in pil_keys}}
    ratios: dict[str, float] = {}
    widest = pil_keys[-1]
    for k in runs:
        walls = [w for w, _ in m[f"whole/{k}"]]
        res[k] = {"whole_process_img_per_s": n / statistics.median(walls),
                  "in_process_img_per_s": n / statistics.median(m[f"inproc/{k}"]),
                  "whole_seconds": walls, "whole_cpu_seconds": [c for _, c in m[f"whole/{k}"]],
                  "in_process_seconds": m[f"inproc/{k}"], "score_cpu_seconds": m[f"score/{k}"]}
        # round by round against the PIL run of the same round (the same machine load): throughput, and CPU seconds
        # against decoding alone in one process (steadier on a busy machine)
        ratios[f"whole_vs_pil/{k}"] = statistics.median(p[0] / w for p, w in zip(m[widest], walls, strict=True))
        ratios[f"cpu_vs_pil_1proc/{k}"] = statistics.median(c / p[1] for p, (_, c) in zip(m["pil_1"], m[f"whole/{k}"],
                                                                                           strict=True))
    if "onnx" in engines and "torch" in engines:
        ratios["whole_onnx_vs_torch"] = (statistics.median(w for w, _ in m[f"whole/{args.model}/torch"])
                                         / statistics.median(w for w, _ in m[f"whole/{args.model}/onnx"]))
    if args.baseline:
        for e in engines:
            ratios[f"in_process_vs_seed_cnn/{e}"] = (res[f"{args.model}/{e}"]["in_process_img_per_s"]
                                                    / res[f"seed-cnn/{e}"]["in_process_img_per_s"])
    if args.compare_src:
        res["compare_src"] = args.compare_src
        res["base_whole_seconds"] = [w for w, _ in m["whole_base"]]
        res["base_whole_cpu_seconds"] = [c for _, c in m["whole_base"]]
        res["base_one_image_seconds"] = [w for w, _ in m["one_image_base"]]
        res["base_one_image_cpu_seconds"] = [c for _, c in m["one_image_base"]]
        default = f"{args.model}/{engines[0]}"
        for name, base, this in (("one_image", "one_image_base", "one_image"), ("whole", "whole_base",
                                                                                 f"whole/{default}")):
            pairs = zip(m[base], m[this], strict=True)
            ratios[f"base_vs_this/{name}"] = statistics.median(b[0] / t[0] for b, t in pairs)
    res["ratios"] = ratios
    return res


def main() -> None:
    args = parse_args()
    files = expand_paths([args.data])[0]
    n = len(files)
    engines = ["torch"] if args.bf16 else args.engines
    with tempfile.TemporaryDirectory() as tmp:
        models = {args.model: args.model}
        if args.baseline:
            torch.manual_seed(0)
            models["seed-cnn"] = str(save_checkpoint(Net(ModelSpec(arch="seed-cnn")).eval(), Path(tmp) / "seed-cnn"))
        runs = {f"{k}/{e}": (m, e) for k, m in models.items() for e in engines}
        dets = {key: load(m, e) for key, (m, e) in runs.items()}
        res = summarise(args, run_rounds(args, runs, dets, n, files, engines), runs, engines, n)
    write_json(args.out, res)
    for k in runs:
        print(f"{k}: {res[k]['whole_process_img_per_s']:.0f} img/s whole process "
              f"({statistics.median(res[k]['whole_cpu_seconds']):.2f} CPU s), "
              f"{res[k]['in_process_img_per_s']:.0f} img/s in process, scoring alone "
              f"{statistics.median(res[k]['score_cpu_seconds']):.2f} CPU s (medians of {args.rounds})")
    print(", ".join(f"PIL decode {k[11:-10]}: {v:.0f} img/s" for k, v in res.items()
                    if k.startswith("pil_decode_") and k.endswith("img_per_s"))
          + f"; one-image scan {res['one_image_median_s']:.3f} s wall, "
            f"{statistics.median(res['one_image_cpu_seconds']):.3f} CPU s (median)")
    for k, v in res["ratios"].items():
        print(f"{k}: {v:.2f}x")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
