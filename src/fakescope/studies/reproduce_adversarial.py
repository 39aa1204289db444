"""``fakescope reproduce adversarial``: the seed notebook's adversarial experiment, then why it scored 49.8%.

Seed protocol: 7,000 CIFAR-10 originals + their 7,000 FGSM copies (stored uint8 ``.npz``, ``images``), labelled
clean 0 / attacked 1, split 80/20 with ``train_test_split(test_size=0.2, random_state=42)`` over all 14,000
images (so an original and its copy may sit on both sides: the seed's flaw), seed-cnn, Adam 1e-3, batch 32,
5 epochs, verdict at 0.5. Then each candidate explanation is measured: attack strength, uint8 rounding, double
normalisation, pairs split across train and test; and the residual-cnn (SRM high-pass) detector for contrast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from ..data import DataError, ImageSet, images_from_array, load_dataset
from ..inference.predict import predict_logits
from ..io import atomic_open, write_json
from ..models import load_checkpoint
from ..models.net import Net
from ..progress import printer
from ..training.config import TrainConfig

SEED_REPORTED_ACCURACY = 0.498


def _fingerprint(ds: ImageSet) -> str:
    h = hashlib.sha256(ds.images.tobytes())
    h.update(ds.labels.tobytes())
    return h.hexdigest()


def seed_adv_config(out: Path, seed: int, epochs: int = 5) -> TrainConfig:
    """The seed notebook's recipe (``reproduce.seed_config``) on the clean/attacked task."""
    from .reproduce_cifake import seed_config

    return dataclasses.replace(seed_config(out, seed, 0), task="adversarial", epochs=epochs)


def _fit_or_load(cfg: TrainConfig, ds: ImageSet, quiet: bool) -> Net:
    """Train with ``fit``, or reuse ``cfg.out/model.json`` when it was trained with the same config on the same data
    (so an interrupted reproduction resumes)."""
    from ..training.loop import fit

    run = Path(cfg.out)
    ds.fingerprint = _fingerprint(ds)
    if (run / "model.json").exists():
        net, meta = load_checkpoint(run / "model.json")
        same = {k: v for k, v in meta.get("train_config", {}).items() if k != "resume"} == \
            {k: v for k, v in cfg.to_dict().items() if k != "resume"}
        if same and meta.get("data_fingerprint") == ds.fingerprint:
            return net
        raise FileExistsError(f"{run} holds a model trained on other data or settings; choose another --out")
    fit(dataclasses.replace(cfg, resume=(run / "last.json").exists()), dataset=ds, quiet=quiet)
    return load_checkpoint(run / "model.json")[0]


def train_loop(net: Net, x: np.ndarray, y: np.ndarray, epochs: int = 5, batch_size: int = 32, lr: float = 1e-3,
               seed: int = 0) -> Net:
    """The seed recipe (Adam, BCE, no augmentation) on any NHWC array, uint8 or float, from ``net``'s current
    weights: for fine-tuning a pretrained model and for training on images divided by 255 twice."""
    from ..training.loop import make_optimizer, run_epoch

    cfg = TrainConfig(optimizer="adam", lr=lr, weight_decay=0.0, label_smoothing=0.0)
    opt = make_optimizer(cfg, net)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2), torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        chunks = (perm[i:i + batch_size] for i in range(0, max(1, len(xt) // batch_size) * batch_size, batch_size))
        run_epoch(net, opt, ((xt[idx], yt[idx]) for idx in chunks if len(idx) > 1), cfg)  # BatchNorm needs two
    return net.eval()


def seed_verdict_metrics(net: Net, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy of the seed's verdict (logit > 0, i.e. P >= 0.5 uncalibrated) and ROC-AUC of a binary net's logits
    (not ``evaluation.metrics.binary_metrics``: no calibration, no threshold, no bootstrap)."""
    z = predict_logits(net, images).astype(np.float64)
    both = 0 < labels.sum() < len(labels)
    return {"accuracy": float(((z > 0).astype(np.int64) == labels).mean()),
            "roc_auc": float(roc_auc_score(labels, z)) if both else None, "n": len(labels)}


def seed_split(n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The seed's split: ``train_test_split(test_size=0.2, random_state=42)`` over all items (pairs ignored)."""
    tr, te = train_test_split(np.arange(n_items), test_size=0.2, random_state=42)
    return np.asarray(tr), np.asarray(te)


def group_aware_split(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same 80/20 proportions with ``GroupShuffleSplit(random_state=42)``: pairs stay together."""
    gss = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=42)
    tr, te = next(gss.split(np.zeros(len(groups)), groups=groups))
    return tr, te


def rounding_effect(victim: Net, images: np.ndarray, labels: np.ndarray, attack: str, eps: float,
                    seed: int = 0) -> dict[str, Any]:
    """How much of a float perturbation survives saving as uint8: pixels changed, L∞ and L2 before/after rounding,
    and the victim's accuracy on the float vs the stored images."""
    from ..adversarial.attacks.base import VictimLogits, create_attack, seeded, to_uint8
    from ..adversarial.attacks.stats import predict

    x = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    with seeded(seed):
        xf = create_attack(attack, victim, eps=eps).generate(x, labels)
    xu = to_uint8(xf).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    df, du = (xf - x).reshape(len(x), -1), (xu - x).reshape(len(x), -1)
    with torch.no_grad():
        pf = VictimLogits(victim.eval())(torch.from_numpy(xf)).argmax(1).numpy()
    l2f = np.linalg.norm(df, axis=1)
    return {"attack": attack, "eps": eps, "eps_grey_levels": eps * 255, "n": len(x),
            "pixels_changed_float": float((np.abs(df) > 1e-7).mean()),
            "pixels_changed_uint8": float((np.abs(du) > 1e-7).mean()),
            "linf_float": float(np.abs(df).max()), "linf_uint8": float(np.abs(du).max()),
            "l2_float_mean": float(l2f.mean()), "l2_uint8_mean": float(np.linalg.norm(du, axis=1).mean()),
            "l2_kept_mean": float((np.linalg.norm(du, axis=1) / np.maximum(l2f, 1e-12)).mean()),
            "victim_accuracy_clean": float((predict(victim, images) == labels).mean()),
            "victim_accuracy_float_adv": float((pf == labels).mean()),
            "victim_accuracy_uint8_adv": float((predict(victim, to_uint8(xf)) == labels).mean())}


def double_normalisation_effect(clean: np.ndarray, attacked: np.ndarray, net: Net) -> dict[str, Any]:
    """What the input becomes when [0, 1] floats are divided by 255 again, and what ``net``'s normalisation
    (mean/std of its spec) turns that into; plus whether fakescope's loader accepts it."""
    once = clean.astype(np.float64) / 255.0
    twice = once / 255.0
    diff_twice = np.abs(attacked.astype(np.float64) - clean.astype(np.float64)) / 255.0 / 255.0
    mean, std = np.asarray(net.spec.mean), np.asarray(net.spec.std)
    normed = (twice - mean) / std
    try:
        images_from_array(twice[:8].astype(np.float32), "twice-divided images")
        refused = None
    except DataError as e:
        refused = str(e)
    return {"max_value_once": float(once.max()), "max_value_twice": float(twice.max()),
            "pixel_std_once": float(once.std()), "pixel_std_twice": float(twice.std()),
            "attack_linf_twice": float(diff_twice.max()),
            "normalised_input_range": [float(normed.min()), float(normed.max())],
            "normalised_input_std": float(normed.std()),
            "normalised_input_std_once": float(((once - mean) / std).std()),
            "fakescope_loader_refuses": refused}


def _load_victim(victim: str | os.PathLike[str] | Net) -> tuple[Net, str | None]:
    if isinstance(victim, Net):
        return victim.eval(), None
    return load_checkpoint(victim)[0], str(victim)


def _write_pairs(folder: Path, images: np.ndarray, adv: np.ndarray, labels: np.ndarray,
                 manifest: dict[str, Any]) -> None:
    """``fakescope attack``'s files plus ``seed_dataset.npz``: the 2n images labelled 0/1 with their pair ids."""
    from ..adversarial import write_attack

    write_attack(folder, images, adv, labels, manifest)
    n = len(images)
    with atomic_open(folder / "seed_dataset.npz") as fh:
        np.savez(fh, images=np.concatenate([images, adv]), labels=np.r_[np.zeros(n, np.int64), np.ones(n, np.int64)],
                 groups=np.r_[np.arange(n), np.arange(n)])


@dataclasses.dataclass
class _Setup:
    """What the steps of one reproduction share: the victim, its ``n`` originals and where runs are kept."""

    net: Net
    victim_path: str | None
    data: str
    split: str
    idx: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    attack: str
    seed: int
    epochs: int
    root: Path
    quiet: bool
    say: Callable[[str], None]
    pairs: dict[float, tuple[ImageSet, dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def attacked_set(self, eps: float) -> tuple[ImageSet, dict[str, Any]]:
        """The originals and their copies attacked at ``eps`` (paired ImageSet, attack stats), written once."""
        from ..adversarial import create_attack, make_manifest, paired_imageset, run_attack
        from ..adversarial.protocol import attack_tag

        if eps not in self.pairs:
            atk = create_attack(self.attack, self.net, eps=eps)
            self.say(f"{attack_tag(self.attack, atk.eps)} on {len(self.images)} images")
            adv, st = run_attack(self.net, self.images, self.labels, atk, seed=self.seed)
            manifest = make_manifest(atk, st, self.seed, victim_net=self.net, victim_checkpoint=self.victim_path)
            manifest["source"] = {"data": self.data, "split": self.split, "indices": self.idx.tolist()}
            _write_pairs(self.root / "data" / attack_tag(self.attack, atk.eps), self.images, adv, self.labels,
                         manifest)
            self.pairs[eps] = (paired_imageset(self.images, adv), st)
        return self.pairs[eps]

    def seed_cnn(self, name: str, train: ImageSet) -> Net:
        """A seed-cnn trained with the seed recipe into ``root/name`` (or read back from there)."""
        self.say(f"seed-cnn: {name} ({len(train)} training images)")
        return _fit_or_load(seed_adv_config(self.root / name, self.seed, self.epochs), train, self.quiet)


Split = tuple[np.ndarray, np.ndarray]


def reproduce_adversarial(victim: str | os.PathLike[str] | Net, data: str | os.PathLike[str],
                          out: str | os.PathLike[str] = "runs/reproduce-adversarial", n: int = 7000,
                          attack: str = "fgsm", eps: float = 8 / 255, cifake_model: str | None = None,
                          split: str = "train", seed: int = 0, strength_eps: Sequence[float] = (2 / 255, 8 / 255),
                          rounding_eps: Sequence[float] = (0.5 / 255, 2 / 255, 8 / 255), n_rounding: int = 1000,
                          epochs: int = 5, residual_kw: dict[str, Any] | None = None,
                          quiet: bool = False) -> dict[str, Any]:
    """Run the seed protocol and the measured explanations; writes ``out/reproduce.json`` and returns it.

    ``data``: CIFAR-10 class folders (``split`` sub-folder), CIFAR-10 python batches or an ``.npz`` with labels.
    ``strength_eps``: FGSM budgets for the attack-strength comparison (one seed-cnn each); ``rounding_eps``: the
    budgets whose rounding loss is measured on ``n_rounding`` images. Runs already trained under ``out`` with the
    same settings and data are reused, so an interrupted reproduction picks up where it stopped.
    """
    net, victim_path = _load_victim(victim)
    ds = load_dataset(data, "classify", net.spec.image_size, split)
    if n > len(ds):
        raise ValueError(f"{n} originals asked for, {data} ({split}) holds {len(ds)}")
    idx = np.sort(np.random.default_rng(seed).permutation(len(ds))[:n])
    s = _Setup(net, victim_path, str(data), split, idx, ds.images[idx], ds.labels[idx], attack, seed, epochs,
               Path(out), quiet, printer(quiet, "[reproduce adversarial]"))
    full, stats = s.attacked_set(eps)
    seed_sp, group_sp = seed_split(len(full)), group_aware_split(full.groups)
    tr, te = seed_sp
    r: dict[str, Any] = {"seed_reported_accuracy": SEED_REPORTED_ACCURACY, "data": str(data), "split": split,
                         "victim": victim_path, "n_originals": n, "attack": {"name": attack, "eps": eps, **stats},
                         "epochs": epochs, "seed": seed}
    net_a = s.seed_cnn("seed-cnn-seed-split", full.subset(tr))
    m_a = seed_verdict_metrics(net_a, full.images[te], full.labels[te])
    r["seed_protocol"] = {"split": "train_test_split(test_size=0.2, random_state=42)", "n_train": len(tr),
                          "n_test": len(te), **m_a}
    r["cifake_pretrained"] = _cifake_pretrained(s, cifake_model, full, seed_sp)
    r["explanations"] = {
        "attack_strength": _attack_strength(s, strength_eps, eps, m_a, seed_sp),
        "uint8_rounding": _uint8_rounding(s, rounding_eps, n_rounding),
        "double_normalisation": _double_normalisation(s, full, net_a, seed_sp),
        "pair_split": _pair_split(s, full, net_a, m_a, seed_sp, group_sp)}
    r["residual_cnn"] = _residual_cnn(s, full, residual_kw, seed_sp, group_sp)
    write_json(s.root / "reproduce.json", r)
    return r


def _cifake_pretrained(s: _Setup, cifake_model: str | None, full: ImageSet, seed_sp: Split) -> dict[str, Any]:
    """(b): a pretrained CIFAKE detector fitted further with the seed recipe, before and after, on the seed split."""
    if not cifake_model:
        return {"skipped": "no --cifake-model given"}
    tr, te = seed_sp
    s.say(f"CIFAKE model {cifake_model}: fitted further with the seed recipe")
    cnet, _ = load_checkpoint(cifake_model)
    if not cnet.spec.binary:
        raise ValueError(f"{cifake_model}: a binary (REAL/FAKE) model is needed, got {cnet.spec.classes}")
    before = seed_verdict_metrics(cnet, full.images[te], full.labels[te])
    torch.manual_seed(s.seed)
    train_loop(cnet, full.images[tr], full.labels[tr], epochs=s.epochs, seed=s.seed)
    return {"model": str(cifake_model), "arch": cnet.spec.arch, "before_fitting": before,
            **seed_verdict_metrics(cnet, full.images[te], full.labels[te])}


def _attack_strength(s: _Setup, strength_eps: Sequence[float], eps: float, m_a: dict[str, Any],
                     seed_sp: Split) -> list[dict[str, Any]]:
    """One seed-cnn per FGSM budget on the seed split (the main budget's is ``m_a``, already measured)."""
    from ..adversarial.protocol import attack_tag

    tr, te = seed_sp
    rows = []
    for e in strength_eps:
        s_full, s_stats = s.attacked_set(e)
        m = m_a if e == eps else seed_verdict_metrics(
            s.seed_cnn(f"seed-cnn-{attack_tag(s.attack, e)}", s_full.subset(tr)), s_full.images[te],
            s_full.labels[te])
        rows.append({"eps": e, "eps_grey_levels": e * 255, "victim_success_rate": s_stats.get("success_rate"),
                     "linf_max": s_stats.get("linf_max"), "l2_mean": s_stats.get("l2_mean"), **m})
    return rows


def _uint8_rounding(s: _Setup, rounding_eps: Sequence[float], n_rounding: int) -> list[dict[str, Any]]:
    """``rounding_effect`` of each budget on the first ``n_rounding`` originals."""
    s.say("uint8 rounding")
    k = min(n_rounding, len(s.images))
    return [rounding_effect(s.net, s.images[:k], s.labels[:k], s.attack, e, s.seed) for e in rounding_eps]


def _double_normalisation(s: _Setup, full: ImageSet, net_a: Net, seed_sp: Split) -> dict[str, Any]:
    """What dividing by 255 twice does to the input, and a seed-cnn trained on such images."""
    from ..models import TASKS, ModelSpec

    tr, te = seed_sp
    s.say("double normalisation")
    dn = double_normalisation_effect(s.images, full.images[len(s.images):], net_a)
    torch.manual_seed(s.seed)
    dnet = Net(ModelSpec(arch="seed-cnn", task="adversarial", classes=list(TASKS["adversarial"]),
                         image_size=s.net.spec.image_size))
    twice = (full.images.astype(np.float32) / 255.0) / 255.0
    train_loop(dnet, twice[tr], full.labels[tr], epochs=s.epochs, seed=s.seed)
    return {**dn, "seed_cnn_trained_on_twice_divided": seed_verdict_metrics(dnet, twice[te], full.labels[te])}


def _pair_split(s: _Setup, full: ImageSet, net_a: Net, m_a: dict[str, Any], seed_sp: Split,
                group_sp: Split) -> dict[str, Any]:
    """Pairs across train and test: the seed split's accuracy with and without the pair in train, and a seed-cnn
    trained on a group-aware split."""
    from ..adversarial.protocol import pair_leak

    (tr, te), (gtr, gte) = seed_sp, group_sp
    groups = full.groups
    leaked = np.isin(groups[te], groups[tr])
    net_g = s.seed_cnn("seed-cnn-group-split", full.subset(gtr))

    def acc_where(mask: np.ndarray) -> float | None:
        if not mask.any():
            return None
        return seed_verdict_metrics(net_a, full.images[te][mask], full.labels[te][mask])["accuracy"]

    return {"seed_split": {"pair_leak": pair_leak(groups[tr], groups[te]), **m_a,
                           "accuracy_pair_in_train": acc_where(leaked),
                           "accuracy_pair_not_in_train": acc_where(~leaked)},
            "group_split": {"split": "GroupShuffleSplit(test_size=0.2, random_state=42)",
                            "pair_leak": pair_leak(groups[gtr], groups[gte]),
                            **seed_verdict_metrics(net_g, full.images[gte], full.labels[gte])}}


def _residual_cnn(s: _Setup, full: ImageSet, residual_kw: dict[str, Any] | None, seed_sp: Split,
                  group_sp: Split) -> dict[str, Any]:
    """For contrast: the residual-cnn detector (SRM high-pass) trained on each split."""
    from ..adversarial.detectors.residual import ResidualCNN

    kw = dict(ResidualCNN(**(residual_kw or {})).cfg_kw)
    out = {}
    for name, (a, b) in (("seed_split", seed_sp), ("group_split", group_sp)):
        s.say(f"residual-cnn on the {name.replace('_', ' ')}")
        kw_n = {**kw, "batch_size": min(kw["batch_size"], max(2, int(len(a) * (1 - kw["val_fraction"])) - 2))}
        cfg = TrainConfig(task="adversarial", image_size=s.net.spec.image_size,
                          out=str(s.root / f"residual-cnn-{name}"), **kw_n)
        rnet = _fit_or_load(cfg, full.subset(a), s.quiet)
        out[name] = seed_verdict_metrics(rnet, full.images[b], full.labels[b])
    return out


def format_reproduce_adversarial(r: dict[str, Any]) -> str:
    """The table printed by the CLI: the seed's figure beside ours, then one line per measured explanation."""
    pct = (lambda v: "—" if v is None else f"{v:.1%}")  # noqa: E731
    a, sp = r["attack"], r["seed_protocol"]
    lines = [f"Adversarial: clean vs {a['name']} (ε = {a['eps'] * 255:g}/255), {r['n_originals']:,} + "
             f"{r['n_originals']:,} images; victim success rate {pct(a.get('success_rate'))}",
             f"  {'':58s} {'seed notebook':>13s} {'fakescope':>10s}",
             f"  {'(a) seed-cnn, seed split (train_test_split 0.2, seed 42)':58s} "
             f"{r['seed_reported_accuracy']:>13.1%} {pct(sp['accuracy']):>10s}  ROC-AUC {sp['roc_auc']:.3f}"]
    cp = r["cifake_pretrained"]
    lines.append(f"  {'(b) seed-cnn pretrained on CIFAKE, fitted further':58s} {'':>13s} "
                 + (f"{pct(cp['accuracy']):>10s}  (before fitting {pct(cp['before_fitting']['accuracy'])})"
                    if "accuracy" in cp else f"{'skipped':>10s}"))
    ex = r["explanations"]
    lines.append("Why (each line measured):")
    lines.append("  attack strength: " + ", ".join(f"ε {s['eps_grey_levels']:g}/255 → accuracy {pct(s['accuracy'])}"
                                                   f" (victim fooled {pct(s['victim_success_rate'])})"
                                                   for s in ex["attack_strength"]))
    for u in ex["uint8_rounding"]:
        lines.append(f"  uint8 rounding, ε {u['eps_grey_levels']:g}/255: pixels changed "
                     f"{pct(u['pixels_changed_float'])} → {pct(u['pixels_changed_uint8'])}, L∞ "
                     f"{u['linf_float'] * 255:.2f} → {u['linf_uint8'] * 255:.0f} grey levels, L2 kept "
                     f"{pct(u['l2_kept_mean'])}, victim accuracy float {pct(u['victim_accuracy_float_adv'])} / uint8 "
                     f"{pct(u['victim_accuracy_uint8_adv'])}")
    dn = ex["double_normalisation"]
    lines.append(f"  double normalisation: max pixel {dn['max_value_twice']:.4f}, attack L∞ "
                 f"{dn['attack_linf_twice']:.1e}, normalised input std {dn['normalised_input_std']:.4f} (vs "
                 f"{dn['normalised_input_std_once']:.3f}); seed-cnn trained on it: "
                 f"{pct(dn['seed_cnn_trained_on_twice_divided']['accuracy'])}")
    ps = ex["pair_split"]
    lines.append(f"  pairs split: {pct(ps['seed_split']['pair_leak'])} of test images have their pair in train "
                 f"(accuracy {pct(ps['seed_split']['accuracy'])}); group-aware split: leak "
                 f"{pct(ps['group_split']['pair_leak'])}, accuracy {pct(ps['group_split']['accuracy'])}")
    rc = r["residual_cnn"]
    lines.append(f"  residual-cnn (SRM high-pass): seed split {pct(rc['seed_split']['accuracy'])}, group split "
                 f"{pct(rc['group_split']['accuracy'])} (ROC-AUC {rc['group_split']['roc_auc'] or float('nan'):.3f})")
    return "\n".join(lines)
