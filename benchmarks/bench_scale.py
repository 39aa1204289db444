"""Scale-out on one machine: 1 vs 2 training processes (torchrun, gloo), ``pack`` throughput, and training from
packed shards vs from memory; plus the shard stream's own speed (with the flip augmentation) against the model's.

Every training run is ``fakescope train`` (the CLI, under torchrun for 2 processes) on the same subset of CIFAKE's
train split, same config and seed; a figure is the median over ``--epochs`` epochs after the first (warm-up) of the
training time rank 0 logs in ``history.jsonl`` (``train_seconds``: no validation). The CPUs may be shared with other
work: the load average at the start and end is recorded.

    python benchmarks/bench_scale.py --data /work/data/cifake --per-class 10000 --epochs 3
    python benchmarks/bench_scale.py --data /work/data/cifake --scans-only   # + scans of the 5,000 test images
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakescope.data.shards import ShardSet, pack
from fakescope.data.transforms import random_flip
from fakescope.io import read_jsonl, write_json


def subset(data: str, per_class: int, out: Path) -> Path:
    """A CIFAKE-layout folder of symlinks to the first ``per_class`` training images of each class."""
    for cls in ("REAL", "FAKE"):
        d = out / "train" / cls
        d.mkdir(parents=True, exist_ok=True)
        for f in sorted(os.listdir(Path(data) / "train" / cls))[:per_class]:
            (d / f).symlink_to(Path(data, "train", cls, f).resolve())
    return out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train(data: Path, out: Path, procs: int, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    """One ``fakescope train`` run; images/s of the median epoch after the first, and its validation accuracy."""
    cli = ["-m", "fakescope.cli", "train", "--data", str(data), "--arch", args.arch, "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--threads", str(threads), "--out", str(out), "--quiet",
           "--no-tta"]
    cmd = [sys.executable, *cli] if procs == 1 else [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--master-addr=127.0.0.1",
        f"--master-port={_port()}", *cli]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "FAKESCOPE_CACHE": str(out.parent / "cache")}
    subprocess.run(cmd, check=True, env=env)
    epochs = [r for r in read_jsonl(out / "history.jsonl") if r["kind"] == "epoch"]
    steps = epochs[0]["step"]
    images = steps * args.batch_size
    secs = statistics.median(e["train_seconds"] for e in epochs[1:])
    return {"processes": procs, "threads_per_process": threads, "images_per_epoch": images,
            "epoch_seconds": secs, "images_per_s": images / secs, "val_acc": epochs[-1]["val_acc"]}


def stream_rate(shards: Path, batch: int, epochs: int = 2) -> dict[str, float]:
    """Images/s of the shard stream alone (one rank, with the flip), and of the same from in-memory tensors."""
    ss = ShardSet.open(shards)
    keep = np.ones(len(ss), bool)
    gen = torch.Generator().manual_seed(0)
    n_steps = len(ss) // batch
    t0 = time.perf_counter()
    for e in range(epochs):
        for x, _y in ss.stream(keep, e, 0, 1, batch, n_steps):
            random_flip(torch.from_numpy(x).permute(0, 3, 1, 2), gen)
    stream = epochs * n_steps * batch / (time.perf_counter() - t0)
    x_all = torch.from_numpy(ss.gather(np.arange(len(ss)))).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)
    t0 = time.perf_counter()
    for _e in range(epochs):
        perm = torch.randperm(len(ss), generator=gen)
        for i in range(n_steps):
            random_flip(x_all[perm[i * batch:(i + 1) * batch]], gen)
    memory = epochs * n_steps * batch / (time.perf_counter() - t0)
    return {"stream_flip_images_per_s": stream, "memory_flip_images_per_s": memory}


def scan_rates(folder: str, tmp: Path) -> dict[str, Any]:
    """Whole-process wall time of ``fakescope scan`` on ``folder``: one job, two concurrent ``--shard`` jobs then
    ``merge``, and ``--engine ray`` (a local Ray of the machine's CPUs, start-up included)."""
    cli = [sys.executable, "-m", "fakescope.cli", "scan", folder, "--model", "fast", "--max-rows", "0"]
    n = sum(len(files) for _root, _dirs, files in os.walk(folder))
    out: dict[str, Any] = {"images": n}
    t0 = time.perf_counter()
    subprocess.run([*cli, "--output", str(tmp / "one.jsonl")], check=True, capture_output=True)
    out["one_job_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    jobs = [subprocess.Popen([*cli, "--shard", f"{i}/2", "--workers", "0", "--output", str(tmp / f"p{i}.jsonl")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
    assert all(j.wait() == 0 for j in jobs)
    subprocess.run([sys.executable, "-m", "fakescope.cli", "merge", str(tmp / "p0.jsonl"), str(tmp / "p1.jsonl"),
                    "--out", str(tmp / "merged.jsonl")], check=True, capture_output=True)
    out["two_shards_and_merge_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([*cli, "--engine", "ray", "--output", str(tmp / "ray.jsonl")], check=True, capture_output=True)
    out["ray_local_seconds"] = time.perf_counter() - t0
    for k in ("one_job", "two_shards_and_merge", "ray_local"):
        out[f"{k}_images_per_s"] = n / out[f"{k}_seconds"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="CIFAKE layout (train/REAL, train/FAKE)")
    ap.add_argument("--per-class", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--arch", default="fast")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out", default="benchmarks/results/scale.json")
    ap.add_argument("--scans-only", action="store_true", help="only the scan figures, into the existing --out")
    args = ap.parse_args()
    if args.scans_only:
        with tempfile.TemporaryDirectory() as tmp:
            res = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
            start = os.getloadavg()
            res["scan"] = {**scan_rates(str(Path(args.data) / "test"), Path(tmp)), "load_avg_start": start,
                           "load_avg_end": os.getloadavg()}
            write_json(args.out, res)
            print("scan", res["scan"])
        return
    res: dict[str, Any] = {"machine": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                           "load_avg_start": os.getloadavg(), "arch": args.arch, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        folder = subset(args.data, args.per_class, t / "folder")
        t0 = time.perf_counter()
        m = pack(folder, t / "shards", workers=2)
        res["pack"] = {"images": m["total"], "seconds": time.perf_counter() - t0, "workers": 2,
                       "images_per_s": m["total"] / (time.perf_counter() - t0), "shards": len(m["shards"])}
        print("pack", res["pack"], flush=True)
        runs = {"memory_1p_1t": (folder, 1, 1), "memory_1p_2t": (folder, 1, 2), "memory_2p_1t": (folder, 2, 1),
                "shards_1p_2t": (t / "shards", 1, 2), "shards_2p_1t": (t / "shards", 2, 1)}
        for name, (data, procs, threads) in runs.items():
            res[name] = train(data, t / name, procs, threads, args)
            print(name, res[name], flush=True)
        res["stream"] = stream_rate(t / "shards", args.batch_size)
        print("stream", res["stream"], flush=True)
    res["ratio_2p_vs_1p_2t"] = res["memory_2p_1t"]["images_per_s"] / res["memory_1p_2t"]["images_per_s"]
    res["ratio_2p_vs_1p_1t"] = res["memory_2p_1t"]["images_per_s"] / res["memory_1p_1t"]["images_per_s"]
    res["ratio_shards_vs_memory_1p"] = res["shards_1p_2t"]["images_per_s"] / res["memory_1p_2t"]["images_per_s"]
    res["ratio_shards_vs_memory_2p"] = res["shards_2p_1t"]["images_per_s"] / res["memory_2p_1t"]["images_per_s"]
    res["load_avg_end"] = os.getloadavg()
    write_json(args.out, res)
    print({k: v for k, v in res.items() if k.startswith("ratio")}, "->", args.out)


if __name__ == "__main__":
    main()
