"""``fakescope ensemble``: several trained checkpoints → one calibrated ``ensemble`` checkpoint.

The members must have been validated on the SAME images (same data fingerprint, validation fraction and split
seed; train the extra members with ``--split-seed`` equal to the first one's ``--seed``): the ensemble's
temperature and threshold are fitted on that shared validation split, which none of the members trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..data.imageset import train_val_split
from ..data.sources import load_dataset
from ..inference.calibration import calibrate
from ..inference.predict import predict_logits
from ..io import write_json
from ..models import ModelSpec, Net, load_checkpoint, resolve, save_checkpoint
from ..progress import printer
from .config import validation_seed

_SHARED_SPEC = ("task", "classes", "image_size", "mean", "std", "resample")


def _split_key(doc: dict[str, Any]) -> tuple[Any, ...]:
    cfg = doc.get("train_config") or {}
    return doc.get("data_fingerprint"), cfg.get("val_fraction"), cfg.get("train_limit", 0), validation_seed(cfg)


def assemble_ensemble(nets: list[Net]) -> Net:
    """One ``Net`` whose body averages the members' logits, each scaled by ``1 / its temperature``."""
    if len(nets) < 2:
        raise ValueError("an ensemble needs at least 2 models")
    first = nets[0].spec
    for n in nets[1:]:
        for f in _SHARED_SPEC:
            if getattr(n.spec, f) != getattr(first, f):
                raise ValueError(f"ensemble members differ in {f}: {getattr(first, f)} vs {getattr(n.spec, f)}")
    members = [{"arch": n.spec.arch, **n.spec.arch_kwargs} for n in nets]
    spec = ModelSpec(arch="ensemble", task=first.task, classes=list(first.classes), image_size=first.image_size,
                     mean=list(first.mean), std=list(first.std), resample=first.resample,
                     arch_kwargs={"members": members})
    net = Net(spec)
    for body, n in zip(net.body.members, nets, strict=True):
        body.load_state_dict(n.body.state_dict())
    net.body.scales.copy_(torch.tensor([1.0 / n.spec.temperature for n in nets]))
    return net.eval()


def build_ensemble(models: list[str], data: str, out: str, tta: bool = True, quiet: bool = False) -> dict[str, Any]:
    """Assemble ``models``, calibrate on their shared validation split of ``data``, evaluate on its test split."""
    from ..evaluation.evaluate import checkpoint_test_metrics, evaluate_arrays, format_metrics

    say = printer(quiet)
    loaded = [load_checkpoint(resolve(m)) for m in models]
    keys = {_split_key(doc) for _, doc in loaded}
    if len(keys) != 1 or None in next(iter(keys)):
        raise ValueError("ensemble members must share one validation split (same data fingerprint, val fraction, "
                         f"train limit and split seed); got {sorted(map(str, keys))}")
    fingerprint, frac, _limit, split_seed = next(iter(keys))
    net = assemble_ensemble([n for n, _ in loaded])
    ds = load_dataset(data, net.spec.task, net.spec.image_size, "train")
    if ds.fingerprint != fingerprint:
        raise ValueError(f"{data}: not the data the members trained on (fingerprint differs)")
    _, val = train_val_split(ds, frac, split_seed)
    say(f"ensemble of {len(models)}: calibrating on the members' shared validation split ({len(val)} images)")
    cal = calibrate(predict_logits(net, val.images, tta=tta), val.labels)
    net.spec.temperature = cal.temperature
    if cal.threshold is not None:
        net.spec.threshold = cal.threshold
    val_acc = cal.val_acc  # what to choose ensembles by: test figures are for reporting
    say(f"validation accuracy {val_acc:.4f} at threshold {net.spec.threshold:.3f}")
    metrics: dict[str, Any] = {"val_acc": val_acc, "val_size": len(val)}
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    if (Path(data) / "test").is_dir():  # never "test" on the training folder itself
        test = load_dataset(data, net.spec.task, net.spec.image_size, "test")
        m = evaluate_arrays(net, test, tta=tta)
        write_json(run / "metrics.json", m)
        say(format_metrics(m))
        metrics.update(checkpoint_test_metrics(m))
    jpath = save_checkpoint(net, run / "model.json", metrics=metrics, tta=tta, data_fingerprint=fingerprint,
                            ensemble_of=[{"model": str(m_), "weights_sha256": doc["weights_sha256"],
                                          "temperature": n.spec.temperature} for m_, (n, doc) in zip(models, loaded,
                                                                                                  strict=True)],
                            train_config={"val_fraction": frac, "split_seed": split_seed, "data": str(data)})
    say(f"ensemble: wrote {jpath}")
    return {"checkpoint": str(jpath), **metrics}
