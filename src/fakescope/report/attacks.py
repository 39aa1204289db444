"""Report section for attack runs (``fakescope attack --out``): manifest table, ε-curves and example pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .html import array_png, esc, fig_png, figure_bytes, img, note, table

UPSCALE = 4
MAX_FOLDERS_WITH_EXAMPLES = 8
MAX_PREDICT = 512  # images whose victim predictions are computed to pick successful examples


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        doc = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def eps_text(eps: Any, norm: Any) -> str | None:
    """ε as an attack records it: L∞ in grey levels (``8/255``), any other norm as is; ``None``: no ε bound."""
    if not isinstance(eps, (int, float)) or isinstance(eps, bool):
        return None
    return f"{eps * 255:g}/255" if norm == "linf" else f"{eps:g}"


def _row(folder: Path, m: dict[str, Any]) -> list[Any]:
    s = m.get("stats") or {}
    linf = s.get("linf_mean")
    return [folder.name, m.get("attack"), m.get("norm"), eps_text(m.get("eps"), m.get("norm")) or "min-norm",
            m.get("n"), s.get("clean_accuracy"), s.get("adversarial_accuracy"), s.get("success_rate"),
            None if linf is None else linf * 255, s.get("l2_mean"), s.get("psnr_db_mean"), s.get("ssim_mean"),
            s.get("n_unchanged")]


def eps_curves(manifests: list[dict[str, Any]]) -> bytes | None:
    """PNG of accuracy under attack and success rate against ε, one line per (attack, norm); ``None`` if no ε."""
    from matplotlib.figure import Figure

    groups: dict[tuple[str, str], list[tuple[float, dict[str, Any]]]] = {}
    for m in manifests:
        if m.get("eps") is not None and m.get("stats"):
            scale = 255.0 if m.get("norm") == "linf" else 1.0
            groups.setdefault((str(m.get("attack")), str(m.get("norm"))), []).append((float(m["eps"]) * scale, m))
    if not groups:
        return None
    fig = Figure(figsize=(9, 3.6), dpi=110)
    a1, a2 = fig.subplots(1, 2)
    for (name, norm), pts in sorted(groups.items()):
        pts.sort(key=lambda p: p[0])
        xs = [p[0] for p in pts]
        clean = [p[1]["stats"].get("clean_accuracy") for p in pts]
        acc = [p[1]["stats"].get("adversarial_accuracy") for p in pts]
        succ = [p[1]["stats"].get("success_rate") for p in pts]
        label = f"{name} ({'L∞, ε in /255' if norm == 'linf' else 'L2'})"
        c0 = next((c for c in clean if c is not None), None)
        x_acc, y_acc = ([0.0] + xs, [c0] + acc) if c0 is not None else (xs, acc)
        a1.plot(x_acc, [np.nan if v is None else v for v in y_acc], "o-", label=label)
        a2.plot([0.0] + xs, [0.0] + [np.nan if v is None else v for v in succ], "o-", label=label)
    a1.set(title="Victim accuracy under attack (ε = 0: clean)", xlabel="ε", ylabel="accuracy", ylim=(-0.02, 1.02))
    a2.set(title="Attack success rate (of correct images)", xlabel="ε", ylabel="success rate",
           ylim=(-0.02, 1.02))
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    return fig_png(fig)


def amplified(original: np.ndarray, attacked: np.ndarray) -> tuple[np.ndarray, float]:
    """The perturbation made visible: mid-grey + difference scaled so the largest change reaches full range."""
    d = attacked.astype(np.float64) - original.astype(np.float64)
    peak = float(np.abs(d).max(initial=0.0))
    gain = 127.5 / peak if peak > 0 else 1.0
    return np.clip(np.rint(127.5 + d * gain), 0, 255).astype(np.uint8), gain


def _victim(m: dict[str, Any], folder: Path) -> Any:
    """The victim ``Net`` named by the manifest when it still exists with the same weights, else ``None``."""
    from ..adversarial.manifest import checkpoint_hashes
    from ..models import CheckpointError, load_checkpoint

    name = m.get("victim_checkpoint")
    if not name:
        return None
    for cand in (Path(str(name)), folder / str(name), folder.parent / str(name)):
        try:
            if checkpoint_hashes(cand)["victim_weights_sha256"] != m.get("victim_weights_sha256"):
                continue
            return load_checkpoint(cand)[0].eval()
        except (CheckpointError, OSError, ValueError, KeyError):
            continue
    return None


def _big(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, UPSCALE, axis=0), UPSCALE, axis=1)


def examples_html(folder: Path, k: int) -> str:
    """Up to ``k`` cards: original, attacked, amplified perturbation (successful attacks first when the victim
    checkpoint can be loaded to tell)."""
    from ..adversarial.attacks.stats import predict
    from ..adversarial.manifest import read_attack

    try:
        orig, adv, labels, m = read_attack(folder)
    except (OSError, ValueError, KeyError) as e:
        return note(f"{folder.name}: cannot read the images ({e}).")
    classes = list((m.get("victim_spec") or {}).get("classes") or [])
    changed = np.flatnonzero((orig != adv).reshape(len(orig), -1).any(axis=1))
    pool = changed[:MAX_PREDICT]
    pred_o = pred_a = None
    net = _victim(m, folder) if len(pool) else None
    if net is not None:
        pred_o, pred_a = predict(net, orig[pool]), predict(net, adv[pool])
        fooled = (pred_o == labels[pool]) & (pred_a != labels[pool])
        order = np.concatenate([np.flatnonzero(fooled), np.flatnonzero(~fooled)])
    else:
        order = np.arange(len(pool))
    chosen = order[:k]
    if not len(chosen):
        return '<p class="muted">no image was changed by this attack.</p>'

    def name(c: int) -> str:
        return classes[c] if 0 <= c < len(classes) else str(c)

    cards = []
    for j in chosen:
        i = int(pool[j])
        pert, gain = amplified(orig[i], adv[i])
        cap = f"true: {esc(name(int(labels[i])))}"
        if pred_o is not None and pred_a is not None:
            ok = pred_a[j] == labels[i]
            cap += (f'<div class="{"ok" if ok else "bad"}">victim: {esc(name(int(pred_o[j])))} → '
                    f"{esc(name(int(pred_a[j])))}</div>")
        cards.append(f'<div class="card">{img(array_png(_big(orig[i])), "original")}'
                     f'{img(array_png(_big(adv[i])), "attacked")}{img(array_png(_big(pert)), "perturbation")}'
                     f'<div>{cap}</div><div class="name">#{i} · perturbation ×{gain:.0f}</div></div>')
    return '<div class="grid wide">' + "".join(cards) + "</div>"


def attack_section(group: Path, members: list[Path], examples: int = 6) -> tuple[str, str]:
    """Manifest table over the group's folders, ε-curves and example pairs per folder."""
    members = sorted(members, key=lambda f: (_manifest(f).get("attack") or "", _manifest(f).get("eps") or 0.0,
                                             f.name))
    manifests = [_manifest(f) for f in members]
    parts = ['<p class="muted">One row per attack folder (manifest.json). Accuracy and success rate are the '
             "victim's on the stored 8-bit images; success counts only images classified correctly before the "
             "attack. L∞ in grey levels (/255), L2 in [0, 1] units.</p>",
             table(["folder", "attack", "norm", "ε", "images", "clean accuracy", "accuracy under attack",
                    "success rate", "mean L∞ (/255)", "mean L2", "PSNR (dB)", "SSIM", "unchanged"],
                   [_row(f, m) for f, m in zip(members, manifests, strict=True)])]
    victims = {m.get("victim_checkpoint") for m in manifests if m.get("victim_checkpoint")}
    if victims:
        parts.append(f'<p class="muted">victim: {esc(", ".join(sorted(map(str, victims))))}</p>')
    curves = eps_curves(manifests)
    if curves is not None:
        parts.append('<div class="figs">' + figure_bytes(curves, "Accuracy and success rate against ε") + "</div>")
    parts.append('<h3>Examples</h3><p class="muted">Each card: original, attacked, and the perturbation amplified '
                 "around mid-grey (×gain so the largest change fills the range).</p>")
    for f in members[:MAX_FOLDERS_WITH_EXAMPLES]:
        parts.append(f"<h3>{esc(f.name)}</h3>" + examples_html(f, examples))
    if len(members) > MAX_FOLDERS_WITH_EXAMPLES:
        parts.append(note(f"examples shown for the first {MAX_FOLDERS_WITH_EXAMPLES} of {len(members)} folders."))
    return "Attacks", "".join(parts)
