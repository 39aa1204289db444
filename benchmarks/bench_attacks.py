"""Attack throughput, side by side: ART's attacks vs bare / batched PyTorch on the same victim and images.

(a) ``pgd`` (ART ProjectedGradientDescent, L∞, the registry's defaults: 10 steps of 2.5·ε/10, one random start)
    vs a bare PyTorch PGD loop with the same ε, steps, step size, random start and batch size; goal ART/bare ≥ 0.8.
(b) ART ``deepfool`` vs batched torch ``deepfool-fast``, and ART ``cw-l2`` vs ``cw-l2-fast`` (registry defaults
    each), with agreement on the same images: success rate and mean / median L2 of the stored uint8 adversarials.
(c) ``deepfool-fast`` / ``cw-l2-fast`` alone (``--compare deepfool-fast --compare cw-l2-fast``: no slow ART run),
    on all ``--n`` images, against the goal of >= 50 img/s on 2 CPU cores. ``--fast-precision`` (auto / bf16 /
    fp32) and ``--nb-candidates`` set the fast attacks' options (the resolved values are in the output).

Every attack gets the same float [0, 1] chunks of ``--batch-size`` images (as ``run_attack`` feeds them); runs
alternate A B A B over ``--rounds`` so machine drift hits both. Minimum-norm attacks attack the victim's
predicted class. Without ``--victim`` an untrained ``fast`` 10-class Net stands in: speed does not depend on
weight values, but agreement figures of an untrained victim say little, so pass a real checkpoint when you have one.

    python benchmarks/bench_attacks.py --victim victim.json --data cifar10/ --n 512 --rounds 3 --threads 8
    python benchmarks/bench_attacks.py --victim victim --data cifar10/ --n 512 --rounds 3 --threads 2 \
        --compare deepfool-fast --compare cw-l2-fast
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fakescope.adversarial import VictimLogits, attack_stats, create_attack, to_uint8
from fakescope.adversarial.attacks.base import seeded
from fakescope.adversarial.attacks.stats import predict
from fakescope.data import load_dataset
from fakescope.io import write_json
from fakescope.models import CIFAR10_CLASSES, ModelSpec, Net, load_checkpoint

Gen = Callable[[np.ndarray, np.ndarray], np.ndarray]
PAIRS = {"pgd": ("pgd", "pgd-bare"), "deepfool": ("deepfool", "deepfool-fast"), "cw-l2": ("cw-l2", "cw-l2-fast")}
SOLO = ("deepfool-fast", "cw-l2-fast")  # timed alone, goal >= FAST_GOAL img/s on 2 cores
FAST_GOAL = 50.0


def bare_pgd(net: Net, eps: float, steps: int, step: float, seed: int) -> Gen:
    """What a user would write by hand: uniform random start, ``steps`` signed-gradient steps, project, clip."""
    model = VictimLogits(net.eval())
    device = next(net.parameters()).device
    gen = torch.Generator().manual_seed(seed)

    def generate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x0 = torch.from_numpy(x).to(device)
        yt = torch.from_numpy(np.asarray(y, np.int64)).to(device)
        xa = (x0 + (torch.rand(x0.shape, generator=gen).to(device) * 2 - 1) * eps).clamp(0, 1)
        for _ in range(steps):
            xa.requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xa), yt), xa)
            xa = torch.minimum(torch.maximum(xa.detach() + step * g.sign(), x0 - eps), x0 + eps).clamp(0, 1)
        return xa.detach().cpu().numpy()

    return generate


def timed(gen: Gen, x: np.ndarray, y: np.ndarray, batch: int, seed: int) -> tuple[float, np.ndarray]:
    """Seconds to attack all of ``x`` chunk by chunk, and the adversarials (float NCHW)."""
    out = np.empty_like(x)
    with seeded(seed):
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            out[i:i + batch] = gen(x[i:i + batch], y[i:i + batch])
        return time.perf_counter() - t0, out


def agreement(net: Net, images: np.ndarray, adv: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Success rate, median L2 (all images, and over successful ones only) and max L∞ of stored uint8 adversarials."""
    st = attack_stats(net, images, adv, labels)
    ok = predict(net, adv) != labels
    l2 = np.sqrt((((adv.astype(np.float64) - images) / 255.0) ** 2).reshape(len(adv), -1).sum(1))
    return {"success_rate": st["success_rate"], "l2_mean": st["l2_mean"], "l2_median": st["l2_median"],
            "linf_max": st["linf_max"],
            "l2_median_successful": float(np.median(l2[ok])) if ok.any() else None,
            "adversarial_accuracy": st["adversarial_accuracy"]}


def victim_and_data(args: argparse.Namespace, device: torch.device) -> tuple[Net, str, np.ndarray, np.ndarray]:
    """The victim (checkpoint or untrained ``fast``), its description, uint8 NHWC images and their labels."""
    if args.victim:
        net, _ = load_checkpoint(args.victim)
        desc = args.victim
    else:
        torch.manual_seed(0)
        net = Net(ModelSpec(arch="fast", task="classify", classes=list(CIFAR10_CLASSES)))
        desc = "untrained fast (10 classes): speed does not depend on weights; agreement figures say little"
    net = net.to(device).eval()
    size = net.spec.image_size
    rng = np.random.default_rng(args.seed)
    if args.data:
        ds = load_dataset(args.data, "classify", size, args.split)
        idx = np.sort(rng.permutation(len(ds))[: args.n])
        images, labels = ds.images[idx], ds.labels[idx]
    else:
        images = rng.integers(0, 256, (args.n, size, size, 3), dtype=np.uint8)
        labels = predict(net, images)
    return net, desc, images, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--victim", help="classify checkpoint (default: an untrained fast 10-class Net)")
    ap.add_argument("--data", help="class folders / CIFAR-10 batches / .npz (default: random uint8 images)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=512, help="images attacked per run")
    ap.add_argument("--n-slow", type=int, dest="n_slow", help="images for the deepfool / cw-l2 pairs (default --n)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256, dest="batch_size")
    ap.add_argument("--eps", type=float, default=8.0, help="PGD L∞ ε in grey levels (0..255)")
    ap.add_argument("--steps", type=int, default=10, help="PGD steps")
    ap.add_argument("--compare", action="append", choices=[*PAIRS, *SOLO],
                    help="repeat; default the three pairs (pgd, deepfool, cw-l2)")
    ap.add_argument("--fast-precision", dest="fast_precision", default="auto", choices=["auto", "bf16", "fp32"],
                    help="precision of deepfool-fast / cw-l2-fast (default auto: bf16 where the CPU has it)")
    ap.add_argument("--nb-candidates", dest="nb_candidates", type=int, help="deepfool-fast candidate classes")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/bench_attacks.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    net, desc, images, labels = victim_and_data(args, torch.device(args.device))
    x = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    pred = predict(net, images)
    eps, step = args.eps / 255.0, 2.5 * args.eps / 255.0 / args.steps
    n_slow = min(args.n_slow or len(x), len(x))
    comps: dict[str, tuple[str, ...]] = {k: PAIRS.get(k, (k,)) for k in (args.compare or list(PAIRS))}
    fast_kw: dict[str, dict[str, Any]] = {"deepfool-fast": {"precision": args.fast_precision},
                                          "cw-l2-fast": {"precision": args.fast_precision}}
    if args.nb_candidates:
        fast_kw["deepfool-fast"]["nb_candidates"] = args.nb_candidates
    attacks: dict[str, tuple[Gen, dict[str, Any]]] = {}
    for name in sorted({a for names in comps.values() for a in names} - {"pgd-bare"}):
        kw = {"eps": eps, "max_iter": args.steps, "eps_step": step} if name == "pgd" else fast_kw.get(name, {})
        atk = create_attack(name, net, **kw)
        attacks[name] = (atk.generate, atk.describe())
    attacks["pgd-bare"] = (bare_pgd(net, eps, args.steps, step, args.seed),
                           {"attack": "pgd-bare", "norm": "linf", "eps": eps,
                            "parameters": {"max_iter": args.steps, "eps_step": step, "num_random_init": 1}})
    inputs = {"pgd": (x, labels), "deepfool": (x[:n_slow], pred[:n_slow]), "cw-l2": (x[:n_slow], pred[:n_slow]),
              **{k: (x, pred) for k in SOLO}}  # minimum-norm attacks: the victim's predicted class
    for key, names in comps.items():  # warm-up (one small chunk each), not timed
        for name in names:
            timed(attacks[name][0], inputs[key][0][:8], inputs[key][1][:8], args.batch_size, args.seed)
    seconds: dict[tuple[str, str], list[float]] = {(k, a): [] for k, names in comps.items() for a in names}
    outputs: dict[tuple[str, str], np.ndarray] = {}
    for r in range(args.rounds):
        for key, names in comps.items():
            xs, ys = inputs[key]
            for name in names:
                s, outputs[key, name] = timed(attacks[name][0], xs, ys, args.batch_size, args.seed + r)
                seconds[key, name].append(s)
            print(f"round {r}: " + ", ".join(f"{a} {len(xs) / seconds[key, a][-1]:.1f} img/s" for a in names),
                  flush=True)
    results = []
    for key, names in comps.items():
        xs, ys = inputs[key]
        n = len(xs)
        stats = {a: agreement(net, images[:n], to_uint8(outputs[key, a]), ys) for a in names}
        res: dict[str, Any] = {"comparison": key, "n": n, "agreement": stats}
        if len(names) == 1:
            (a,) = names
            ips = n / statistics.median(seconds[key, a])
            res.update({"a": a, "a_params": attacks[a][1], "a_seconds": seconds[key, a], "a_images_per_s": ips,
                        "goal_images_per_s": FAST_GOAL})
        else:
            a, b = names
            ratios = [sa / sb for sa, sb in zip(seconds[key, b], seconds[key, a], strict=True)]  # img/s A / B
            res.update({"a": a, "b": b, "a_params": attacks[a][1], "b_params": attacks[b][1],
                        "a_seconds": seconds[key, a], "b_seconds": seconds[key, b],
                        "a_images_per_s": n / statistics.median(seconds[key, a]),
                        "b_images_per_s": n / statistics.median(seconds[key, b]),
                        "ratio_a_over_b": statistics.median(ratios), "ratios": ratios})
        results.append(res)
    print_table(results)
    import art

    doc = {"victim": desc, "data": args.data or f"random uint8 images ({args.n})", "labels": "true labels for pgd "
           "(victim predictions on random data); victim predictions for deepfool / cw-l2", "n": len(x),
           "rounds": args.rounds, "batch_size": args.batch_size, "device": args.device,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "art": art.__version__,
           "machine": platform.platform(), "cpu_count": os.cpu_count(), "results": results}
    write_json(args.out, doc)
    print(f"-> {args.out}")


def print_table(results: list[dict[str, Any]]) -> None:
    def f(v: float | None, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    head = f"{'attack':<14}{'n':>6}{'img/s':>10}{'success':>9}{'L2 mean':>9}{'L2 med':>9}{'L2 med ok':>11}"
    for r in results:
        if "b" in r:
            print(f"\n{r['comparison']}: ratio {r['a']}/{r['b']} = {r['ratio_a_over_b']:.3f} (images/s, median of "
                  f"{len(r['ratios'])} rounds){'  goal >= 0.8' if r['comparison'] == 'pgd' else ''}")
        else:
            met = "met" if r["a_images_per_s"] >= r["goal_images_per_s"] else "not met"
            print(f"\n{r['comparison']}: median of {len(r['a_seconds'])} rounds, {r['a_params']['parameters']}; "
                  f"goal >= {r['goal_images_per_s']:.0f} img/s on 2 cores: {met} here")
        print(head)
        for side in ("a", "b") if "b" in r else ("a",):
            name = r[side]
            ag = r["agreement"][name]
            print(f"{name:<14}{r['n']:>6}{r[f'{side}_images_per_s']:>10.1f}{f(ag['success_rate'], '.3f'):>9}"
                  f"{f(ag['l2_mean'], '.4f'):>9}{f(ag['l2_median'], '.4f'):>9}"
                  f"{f(ag['l2_median_successful'], '.4f'):>11}")


if __name__ == "__main__":
    main()
