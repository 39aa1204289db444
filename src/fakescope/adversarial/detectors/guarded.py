"""``fakescope guard``: assemble a ``guarded`` detector from a trained residual detector and the victim.

A calibration set of attack folders, made from images that neither model trained on and that are not in the
test set (``fakescope attack --exclude TEST_DIR``), supplies every number fitted here:

1. ``center`` / ``scale``: mean and standard deviation of the two components on CLEAN validation images;
2. ``offset`` and the temperature: Platt scaling, i.e. logistic regression of the label on the score
   (clean and attacked), so probabilities are calibrated and not just ranked;
3. the threshold: the score that flags at most ``fpr`` of the clean validation images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.imageset import ImageSet
from ...data.sources import load_dataset
from ...inference.calibration import calibrate
from ...inference.predict import predict_logits, to_tensor
from ...io import sha256_file, write_json
from ...models import ModelSpec, Net, load_checkpoint, resolve, save_checkpoint
from ...models.guarded import residual_part
from ...progress import printer


def _check_pair(res: Net, vic: Net) -> None:
    if res.spec.task != "adversarial" or not res.spec.binary:
        raise ValueError(f"--residual must be a detector of task 'adversarial', got task {res.spec.task!r}")
    if vic.spec.task != "classify" or len(vic.spec.classes) < 3:
        raise ValueError(f"--victim must be a classifier of >= 3 classes, got task {vic.spec.task!r}")
    for field in ("mean", "std", "image_size"):
        a, b = getattr(res.spec, field), getattr(vic.spec, field)
        if a != b:
            raise ValueError(f"residual and victim differ in {field} ({a} vs {b}): they must see the same input")


def components(net: Net, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """(N, 2) raw components of a guarded ``net``: residual logit, -log(victim margin)."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            out.append(net.body.components(net.normalise(to_tensor(images[i:i + batch_size]))).numpy())
    return np.concatenate(out) if out else np.zeros((0, 2), np.float32)


def assemble(res: Net, vic: Net, sharpness: float = 2.0) -> Net:
    """A guarded ``Net`` holding copies of both bodies (center/scale still 0/1: call ``fit_guarded``)."""
    _check_pair(res, vic)
    spec = ModelSpec(arch="guarded", task="adversarial", classes=list(res.spec.classes),
                     image_size=res.spec.image_size, mean=list(res.spec.mean), std=list(res.spec.std),
                     resample=res.spec.resample,
                     arch_kwargs={"residual": {"arch": res.spec.arch, **res.spec.arch_kwargs},
                                  "victim": {"arch": vic.spec.arch, "num_classes": len(vic.spec.classes),
                                             **vic.spec.arch_kwargs},
                                  "sharpness": float(sharpness)})
    net = Net(spec)
    net.body.residual.load_state_dict(res.body.state_dict())
    net.body.victim.load_state_dict(vic.body.state_dict())
    return net.eval()


def platt_offset(scores: np.ndarray, labels: np.ndarray) -> float:
    """The ``b`` of Platt scaling ``sigmoid((s - b) / T)``, fitted by (almost unregularised) logistic regression."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(scores, np.float64).reshape(-1, 1), labels)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if a <= 0:
        raise ValueError("guard: on the calibration set, higher scores are not more often attacked")
    return -b / a


def fit_guarded(net: Net, val: ImageSet, fpr: float = 0.05, tta: bool = True) -> dict[str, float]:
    """Fit center/scale on clean ``val`` images, then temperature and threshold (at ``fpr`` on clean ``val``)."""
    clean = val.images[val.labels == 0]
    if len(clean) < 20 or (val.labels == 1).sum() < 20:
        raise ValueError(f"guard: the calibration set holds {len(clean)} clean and {(val.labels == 1).sum()} "
                         "attacked images; need at least 20 of each")
    comp = components(net, clean)
    net.body.center.copy_(torch.from_numpy(comp.mean(0)))
    net.body.scale.copy_(torch.from_numpy(np.maximum(comp.std(0), 1e-6)))
    net.body.offset.zero_()
    raw = predict_logits(net, val.images, tta=tta).reshape(-1)
    net.body.offset.fill_(platt_offset(raw, val.labels))
    cal = calibrate(raw - float(net.body.offset), val.labels, threshold=fpr)  # threshold at ``fpr`` on clean
    probs, thr = cal.probs, cal.threshold
    net.spec.temperature, net.spec.threshold = cal.temperature, thr
    return {"val_clean": int(len(clean)), "val_attacked": int((val.labels == 1).sum()),
            "val_fpr": float((probs[val.labels == 0] > thr).mean()),
            "val_tpr": float((probs[val.labels == 1] > thr).mean()),
            "center": comp.mean(0).tolist(), "scale": comp.std(0).tolist(), "offset": float(net.body.offset)}


def guard(residual: str, victim: str, calibration: str, out: str, fpr: float = 0.05, sharpness: float = 2.0,
          test: str | None = None, command: str = "", quiet: bool = False) -> dict[str, Any]:
    """Build, calibrate on ``calibration`` and save ``OUT/model.json``; evaluate on ``test`` if given.
    ``residual`` may itself be a guarded checkpoint: its residual CNN is paired with ``victim``.

    ``calibration``: attack folders (``fakescope attack --exclude``) made from images that neither the victim
    nor the residual CNN trained on and that are not in ``test``: the victim is more confident on its own
    training images, so its margins there would make every new clean image look suspicious.
    """
    from ...evaluation.evaluate import checkpoint_test_metrics, evaluate_arrays, format_metrics

    say = printer(quiet)
    rpath, vpath = resolve(residual), resolve(victim)
    res, rdoc = load_checkpoint(rpath)
    if res.spec.arch == "guarded":  # reuse a guarded detector's residual CNN with another victim
        res = residual_part(res)
    vic, vdoc = load_checkpoint(vpath)
    net = assemble(res, vic, sharpness)
    cal = load_dataset(calibration, "adversarial", net.spec.image_size, "calib")
    say(f"guard: calibration set {calibration}: {len(cal)} images {cal.counts()}")
    fit = fit_guarded(net, cal, fpr)
    say(f"guard: temperature {net.spec.temperature:.3f}, threshold {net.spec.threshold:.4f} "
        f"(calibration FPR {fit['val_fpr']:.3f}, TPR {fit['val_tpr']:.3f})")
    metrics: dict[str, Any] = {"val_fpr": fit["val_fpr"], "val_tpr": fit["val_tpr"], "val_size": len(cal)}
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    if test:
        ts = load_dataset(test, "adversarial", net.spec.image_size, "test")
        m = evaluate_arrays(net, ts, tta=True)
        write_json(run / "metrics.json", m)
        say(format_metrics(m))
        metrics.update(checkpoint_test_metrics(m))
    meta = {"metrics": metrics, "tta": True, "train_command": command, "test_data": test,
            "guarded_from": {"residual": str(rpath), "residual_weights_sha256": sha256_file(
                rpath.parent / rdoc["weights_file"]), "victim": str(victim), "victim_weights_sha256": sha256_file(
                vpath.parent / vdoc["weights_file"]), "calibration": str(calibration), "fpr": fpr, "fit": fit}}
    jpath = save_checkpoint(net, run / "model.json", **meta)
    say(f"guard: wrote {jpath}")
    return {"checkpoint": str(jpath), **metrics}
