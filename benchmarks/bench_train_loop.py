"""Training-loop overhead: fakescope's ``fit`` epoch vs a bare PyTorch loop of the same model, side by side.

Both train the same architecture with the same batch size, optimizer, augmentation (horizontal flip) and data
(uint8 images in memory), alternating A B A B so machine drift hits both. Reported: seconds per epoch (training
only, no validation) and the ratio fakescope / bare.

    python benchmarks/bench_train_loop.py --data ../data/cifake --images 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fakescope.data import ImageSet, load_dataset
from fakescope.io import read_jsonl, write_json
from fakescope.models import ModelSpec, Net
from fakescope.training.config import TrainConfig
from fakescope.training.loop import fit


def bare_epoch(images: np.ndarray, labels: np.ndarray, arch: str, batch: int, seed: int) -> float:
    """What a user would write by hand: normalise, flip, forward, BCE, backward, SGD step."""
    torch.manual_seed(seed)
    model = Net(ModelSpec(arch=arch)).body.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    y_all = torch.from_numpy(labels).float()
    mean = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
    std = torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1)
    model.train()
    t0 = time.perf_counter()
    perm = torch.randperm(len(y_all))
    for i in range(len(y_all) // batch):
        idx = perm[i * batch:(i + 1) * batch]
        x = x_all[idx].float() / 255.0
        flip = torch.rand(len(idx)) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        loss = F.binary_cross_entropy_with_logits(model((x - mean) / std).squeeze(1), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def fakescope_epoch(ds: ImageSet, arch: str, batch: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(arch=arch, epochs=1, batch_size=batch, lr=0.05, val_fraction=0.01, seed=seed,
                          out=tmp, log_every=50, tta=False)
        fit(cfg, dataset=ds, quiet=True)
        return [r for r in read_jsonl(Path(tmp) / "history.jsonl") if r["kind"] == "epoch"][0]["train_seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--arch", default="fast")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/train_loop.json")
    args = ap.parse_args()
    full = load_dataset(args.data, "synthetic", 32, "train")
    rng = np.random.default_rng(0)
    ds = full.subset(np.sort(rng.permutation(len(full))[: args.images]))
    # fit() carves 1% for validation: the bare loop gets the same number of training images
    n_train = len(ds) - round(len(ds) * 0.01)
    a, b = [], []
    fakescope_epoch(ds.subset(np.sort(rng.permutation(len(ds))[:2048])), args.arch, args.batch_size, 0)  # warm-up
    for r in range(args.rounds):
        a.append(fakescope_epoch(ds, args.arch, args.batch_size, r))
        b.append(bare_epoch(ds.images[:n_train], ds.labels[:n_train], args.arch, args.batch_size, r))
        print(f"round {r}: fakescope {a[-1]:.2f}s  bare {b[-1]:.2f}s  ratio {a[-1] / b[-1]:.3f}", flush=True)
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    res = {"arch": args.arch, "batch_size": args.batch_size, "train_images": n_train,
           "fakescope_seconds": a, "bare_seconds": b, "ratio_median": statistics.median(ratios),
           "ratios": ratios, "threads": torch.get_num_threads(), "machine": platform.platform(),
           "cpu_count": __import__("os").cpu_count()}
    write_json(args.out, res)
    print(f"median ratio fakescope/bare = {res['ratio_median']:.3f} over {args.rounds} rounds "
          f"({n_train} images, {args.arch}, batch {args.batch_size}) -> {args.out}")


if __name__ == "__main__":
    main()
