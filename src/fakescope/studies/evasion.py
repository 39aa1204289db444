"""White-box evasion of a synthetic-image detector (FGSM, PGD under L∞) and adversarial fine-tuning.

The attacker perturbs FAKE (label 1) images so that the detector calls them REAL; REAL images are left alone.
Attacks run in plain torch on the trainable (unfused) ``Net`` with [0, 1] float inputs, against the exact decision
rule of the checkpoint: the flip-TTA logit when the checkpoint uses TTA, then temperature and threshold. Adversarial
images stay in float (no re-quantisation to 8 bits). Each attack keeps, per image, the most evasive point it
visited (the clean image included), so attacked accuracy is never above clean accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..adversarial.attacks.pgd import pgd_linf
from ..data import ImageSet, load_dataset, train_val_split
from ..data.imageset import subsample_per_class
from ..inference.calibration import calibrate
from ..inference.predict import predict_logits
from ..io import write_json
from ..models import load_checkpoint, save_checkpoint
from ..models.net import Net
from .common import has_test_split, new_figure, save

DEFAULT_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)


def _floats(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def _logits(net: Net, x: torch.Tensor, tta: bool) -> torch.Tensor:
    z = net.logits(x)
    return (z + net.logits(x.flip(3))) / 2 if tta else z


def attack(net: Net, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, tta: bool = False,
           generator: torch.Generator | None = None, method: str = "pgd", batch_size: int = 256) -> torch.Tensor:
    """L∞ attack pushing each image toward the other class (label 1 → lower logit, label 0 → higher), on the one
    torch PGD (``adversarial.attacks.pgd.pgd_linf``).

    ``method``: ``fgsm`` (one signed-gradient step of size eps) or ``pgd`` (uniform random start, ``steps`` steps of
    2.5·eps/steps). Returns float [0, 1] NCHW images within ``eps`` of ``x``: per image, the visited point (clean
    included) with the most evasive logit. The model's train/eval flags are restored; no ``.grad`` is accumulated.
    """
    if method not in ("fgsm", "pgd"):
        raise ValueError(f"unknown attack {method!r} (fgsm, pgd)")
    if not net.spec.binary:
        raise ValueError("evasion attacks need a binary detector")
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    out = []
    try:
        with torch.inference_mode(False), torch.enable_grad():
            for i in range(0, len(x), batch_size):
                out.append(_attack_batch(net, x[i:i + batch_size], y[i:i + batch_size], eps, steps, tta, generator,
                                         method))
    finally:
        for m, mode in modes:
            m.training = mode
    return torch.cat(out) if out else x.clone()


def _attack_batch(net: Net, x0: torch.Tensor, y: torch.Tensor, eps: float, steps: int, tta: bool,
                  gen: torch.Generator | None, method: str) -> torch.Tensor:
    """``pgd_linf`` on the signed logit (FGSM: one step of eps from ``x0``), keeping each image's best point."""
    sign = (2 * y - 1).float()  # +1: minimise the logit (FAKE → REAL); -1: maximise it

    def objective(x: torch.Tensor) -> torch.Tensor:
        return sign * _logits(net, x, tta)

    with torch.no_grad():
        best, best_obj = x0.clone(), objective(x0)

    def keep_best(x: torch.Tensor) -> bool:
        nonlocal best_obj
        with torch.no_grad():
            obj = objective(x)
            better = obj < best_obj
            best[better], best_obj = x[better], torch.where(better, obj, best_obj)
        return False

    fgsm = method == "fgsm"
    pgd_linf(objective, x0, eps, 1 if fgsm else max(1, steps), step_size=eps if fgsm else None,
             random_start=not fgsm, generator=gen, on_step=keep_best)
    return best


@torch.no_grad()
def _predict_fake(net: Net, x: torch.Tensor, tta: bool) -> np.ndarray:
    """The checkpoint's verdict (1 = FAKE) for float images."""
    was = net.training
    net.eval()
    try:
        z = torch.cat([_logits(net, x[i:i + 512], tta) for i in range(0, len(x), 512)])
    finally:
        net.train(was)
    p = torch.sigmoid(z.float() / net.spec.temperature).numpy()
    return (p >= net.spec.threshold).astype(np.int64)


def _evaluate(net: Net, test: ImageSet, eps_list: tuple[float, ...], steps: int, tta: bool,
              seed: int) -> dict[str, Any]:
    """Clean accuracy and accuracy under FGSM and PGD per eps (attacking the FAKE images only)."""
    x, y = _floats(test.images), test.labels
    fake = y == 1
    xf = x[torch.from_numpy(fake)]
    pred_real = _predict_fake(net, x[torch.from_numpy(~fake)], tta)
    real_correct = int((pred_real == 0).sum())

    def accs(pred_fake: np.ndarray) -> dict[str, float]:
        return {"acc_fake": float(pred_fake.mean()) if len(pred_fake) else float("nan"),
                "acc_all": (real_correct + int(pred_fake.sum())) / len(y)}

    res: dict[str, Any] = {"clean": {**accs(_predict_fake(net, xf, tta)), "acc_real": float((pred_real == 0).mean())}}
    ones = torch.ones(len(xf), dtype=torch.long)
    for method in ("fgsm", "pgd"):
        res[method] = []
        for eps in eps_list:
            gen = torch.Generator().manual_seed(seed)
            adv = attack(net, xf, ones, eps, steps, tta, gen, method)
            res[method].append({"eps": eps, "eps_255": eps * 255, **accs(_predict_fake(net, adv, tta)),
                                "linf": float((adv - xf).abs().amax()) if len(xf) else 0.0})
    return res


def _finetune(net: Net, train: ImageSet, eps: float, steps: int, epochs: int, lr: float, batch_size: int,
              seed: int) -> list[dict[str, float]]:
    """Adversarial fine-tuning: each batch is half clean, half PGD (untargeted, at ``eps``); Adam at ``lr``, plain
    BCE, through ``training.loop.run_epoch``. Returns each epoch's loss (mean over images)."""
    from ..training.config import TrainConfig
    from ..training.loop import run_epoch

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    cfg = TrainConfig(label_smoothing=0.0)
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = _floats(train.images), torch.from_numpy(train.labels)

    def half_pgd(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = len(y) // 2
        adv = attack(net, x[half:], y[half:], eps, steps, False, gen, "pgd")
        net.train()
        return torch.cat([x[:half], adv]), y

    log = []
    for epoch in range(epochs):
        perm = torch.randperm(len(train), generator=gen)
        chunks = [idx for idx in perm.split(batch_size) if len(idx) >= 2]  # BatchNorm cannot train on one image
        metrics = run_epoch(net, opt, ((x_all[idx], y_all[idx]) for idx in chunks), cfg, batch_transform=half_pgd)
        total = sum(m["loss"] * len(idx) for m, idx in zip(metrics, chunks, strict=True))
        log.append({"epoch": epoch + 1, "loss": total / max(1, sum(len(idx) for idx in chunks))})
    net.eval()
    return log


def _recalibrate(net: Net, val: ImageSet, tta: bool) -> None:
    """Re-fit temperature and threshold (``calibrate``) on ``val``; kept as they were if it holds one class only."""
    if len(np.unique(val.labels)) < 2:
        return
    cal = calibrate(predict_logits(net, val.images, tta=tta), val.labels)
    net.spec.temperature, net.spec.threshold = cal.temperature, cal.threshold


def evasion_study(model: str, data: str, out: str, eps_list: tuple[float, ...] = DEFAULT_EPS, steps: int = 10,
                  limit: int | None = 1000, finetune_epochs: int = 1, seed: int = 0, finetune_eps: float | None = None,
                  lr: float = 1e-4, batch_size: int = 128) -> dict[str, Any]:
    """FGSM/PGD evasion before and after adversarial fine-tuning; writes ``out/evasion.json``, ``out/evasion.png``
    and the fine-tuned checkpoint ``out/finetuned.json`` (+ ``.safetensors``).

    ``data``: a CIFAKE-layout folder (``test/`` is attacked, ``train/`` fine-tunes). ``limit``: images per class,
    both for the attacked test subset and the fine-tuning subset of the ``train``
    split (10% of which is held out to re-fit temperature and threshold). ``finetune_eps`` defaults to the largest
    eps.
    """
    eps_list = tuple(float(e) for e in eps_list)
    if not eps_list or min(eps_list) <= 0:
        raise ValueError("eps_list must hold positive budgets ([0, 1] units, e.g. 8/255)")
    if not has_test_split(data):
        raise ValueError(f"{data}: evasion needs a CIFAKE-layout folder (train/ and test/): fine-tuning on train/ "
                         "must never see the attacked test/ images")
    torch.manual_seed(seed)
    net, meta = load_checkpoint(model)
    spec = net.spec
    if not spec.binary:
        raise ValueError(f"{model}: evasion needs a binary detector, this one has classes {spec.classes}")
    tta = spec.tta
    test = subsample_per_class(load_dataset(data, task=spec.task, size=spec.image_size, split="test"), limit, seed)
    before = _evaluate(net, test, eps_list, steps, tta, seed)
    ft_eps = max(eps_list) if finetune_eps is None else float(finetune_eps)
    train = subsample_per_class(load_dataset(data, task=spec.task, size=spec.image_size, split="train"), limit, seed)
    fit_set, val = train_val_split(train, 0.1, seed)
    cal_before = {"temperature": spec.temperature, "threshold": spec.threshold}
    log = _finetune(net, fit_set, ft_eps, steps, finetune_epochs, lr, batch_size, seed)
    _recalibrate(net, val, tta)
    after = _evaluate(net, test, eps_list, steps, tta, seed)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    ft = {"eps": ft_eps, "eps_255": ft_eps * 255, "epochs": finetune_epochs, "steps": steps, "lr": lr,
          "batch_size": batch_size, "n_train": len(fit_set), "n_calibration": len(val), "log": log,
          "calibration_before": cal_before,
          "calibration_after": {"temperature": spec.temperature, "threshold": spec.threshold}}
    save_checkpoint(net, outdir / "finetuned", train_config=meta.get("train_config"), tta=tta,
                    data_fingerprint=meta.get("data_fingerprint"), finetuned_from=str(model),
                    adversarial_finetune={k: v for k, v in ft.items() if k != "log"},
                    metrics={"clean_acc_all": after["clean"]["acc_all"]}, trained_with=f"fakescope {__version__}")
    doc: dict[str, Any] = {
        "study": "evasion", "model": str(model), "data": str(data), "split": "test", "limit": limit, "seed": seed,
        "n_test": len(test), "n_fake": int((test.labels == 1).sum()), "classes": list(spec.classes), "tta": tta,
        "eps": list(eps_list), "eps_255": [e * 255 for e in eps_list], "steps": steps, "finetune": ft,
        "before": before, "after": after, "finetuned_checkpoint": str(outdir / "finetuned.json"),
        "recovery": [{"eps": b["eps"], "eps_255": b["eps_255"], "pgd_acc_fake_before": b["acc_fake"],
                      "pgd_acc_fake_after": a["acc_fake"], "gain": a["acc_fake"] - b["acc_fake"]}
                     for b, a in zip(before["pgd"], after["pgd"], strict=True)],
        "clean_cost": {"acc_all_before": before["clean"]["acc_all"], "acc_all_after": after["clean"]["acc_all"],
                       "delta": after["clean"]["acc_all"] - before["clean"]["acc_all"]},
    }
    doc = _no_nan(doc)
    write_json(outdir / "evasion.json", doc)
    plot_evasion(doc, outdir / "evasion.png")
    return doc


def _no_nan(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _no_nan(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_no_nan(v) for v in o]
    return None if isinstance(o, float) and not math.isfinite(o) else o


def plot_evasion(doc: dict[str, Any], path: str | Path) -> None:
    """Accuracy on FAKE images (left) and on all images (right) vs eps, before and after fine-tuning."""
    fig = new_figure(9, 3.6)
    axes = fig.subplots(1, 2, sharey=True)
    xs = [0.0] + list(doc["eps_255"])
    styles = {("before", "fgsm"): ("tab:red", "--", "^"), ("before", "pgd"): ("tab:red", "-", "o"),
              ("after", "fgsm"): ("tab:green", "--", "^"), ("after", "pgd"): ("tab:green", "-", "o")}
    for ax, key, title in zip(axes, ("acc_fake", "acc_all"), ("accuracy on FAKE images", "accuracy on all images"),
                              strict=True):
        for (when, method), (colour, ls, marker) in styles.items():
            res = doc[when]
            ys = [res["clean"][key]] + [r[key] for r in res[method]]
            ys = [np.nan if v is None else v for v in ys]
            ax.plot(xs, ys, ls=ls, marker=marker, color=colour, label=f"{method.upper()} {when} fine-tuning")
        ax.set_xticks(xs, ["clean"] + [f"{e:g}/255" for e in doc["eps_255"]])
        ax.set(title=title, xlabel="L∞ budget eps", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[1].legend(loc="lower left", fontsize=8)
    ft = doc["finetune"]
    fig.suptitle(f"Evasion of {Path(str(doc['model'])).name}: {doc['n_fake']} FAKE images, PGD {doc['steps']} steps; "
                 f"fine-tuned {ft['epochs']} epoch(s) at eps {ft['eps_255']:g}/255", fontsize=10)
    save(fig, path)
