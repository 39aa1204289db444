"""The adversarial benchmark's figures and text tables: ε curves, cross-attack heat maps, ``format_benchmark``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io import save_figure


def plot_eps_curves(rows: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """AUROC against ε (grey levels) per bounded attack family, one panel per detector; minimum-norm attacks as
    dotted horizontal lines."""
    from matplotlib.figure import Figure

    dets = sorted({r["detector"] for r in rows})
    fig = Figure(figsize=(4.2 * max(1, len(dets)), 3.4), dpi=110)
    for k, det in enumerate(dets):
        ax = fig.add_subplot(1, max(1, len(dets)), k + 1)
        mine = [r for r in rows if r["detector"] == det and r["auroc"] is not None]
        for fam in sorted({r["attack"] for r in mine if r["eps"] is not None}):
            pts = sorted((r["eps"] * 255, r["auroc"]) for r in mine if r["attack"] == fam and r["eps"] is not None)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=fam)
        for r in (r for r in mine if r["eps"] is None):
            ax.axhline(r["auroc"], ls=":", color="grey")
            ax.text(ax.get_xlim()[0], r["auroc"], f" {r['attack']}", va="bottom", fontsize=7, color="grey")
        ax.axhline(0.5, ls="--", lw=0.8, color="black")
        ax.set(title=det, xlabel="ε (grey levels)", ylabel="AUROC", ylim=(0.0, 1.02))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)


def plot_cross_attack(c: dict[str, Any], det: str, path: str | os.PathLike[str]) -> Path:
    """Heat map of AUROC: rows = attack trained on, columns = attack tested on."""
    from matplotlib.figure import Figure

    m = np.array([[np.nan if v is None else v for v in row] for row in c["auroc"]], np.float64)
    fig = Figure(figsize=(1.0 + 0.75 * len(c["test"]), 1.0 + 0.5 * len(c["train"])), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(c["test"])), c["test"], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(c["train"])), c["train"], fontsize=7)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if m[i, j] > 0.7 else "white")
    ax.set(title=f"{det}: AUROC (train ↓, test →)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)


def format_benchmark(doc: dict[str, Any]) -> str:
    """A short text table: AUROC / TPR@FPR / accuracy per detector and attack, then FPRs and the adaptive attack."""
    f = (lambda v: "   n/a" if v is None else f"{v:.3f}")  # noqa: E731
    w = max([16] + [len(r["detector"]) for r in doc["per_attack"]])
    lines = [f"{'detector':{w}s} {'trained on':14s} {'attack':16s} {'success':>8s} {'AUROC':>7s} {'TPR@1%':>7s} "
             f"{'TPR@5%':>7s} {'thr from':>10s} {'TPR@thr':>8s} {'FPR@thr':>8s} {'acc@thr':>8s} {'AUROC fooled':>12s}"]
    for r in doc["per_attack"]:
        lines.append(f"{r['detector']:{w}s} {r['trained_on']:14s} {r['tag']:16s} {f(r['attack_success_rate']):>8s} "
                     f"{f(r['auroc']):>7s} {f(r['tpr_at_1fpr']):>7s} {f(r['tpr_at_5fpr']):>7s} "
                     f"{r.get('threshold_source', 'val-fpr'):>10s} {f(r.get('tpr')):>8s} {f(r.get('fpr')):>8s} "
                     f"{f(r.get('accuracy')):>8s} {f(r.get('auroc_fooled')):>7s} (n {r.get('n_fooled', '?')})")
    for k, c in doc.get("checkpoints", {}).items():
        lines.append(f"{k}: threshold {c['threshold']:.4f} ({c['threshold_source']}), FPR on {c['n_val']} clean "
                     f"validation images {f(c['val_fpr_at_threshold'])}; weights unchanged: "
                     f"{c.get('parameters_unchanged')}")
    lines.append("false-positive rate at the shipped threshold (noise-l2-*: the attacked test sources only):")
    for k, fprs in doc["noisy_negatives"]["fpr"].items():
        lines.append(f"  {k:30s} " + ", ".join(f"{fam}={v:.3f}" for fam, v in fprs.items()))
    for k, a in doc["adaptive"].items():
        if not a.get("applicable"):
            lines.append(f"adaptive attack on {k}: not applicable ({a['reason']})")
            continue
        ad, na = a["adaptive"], a.get("non_adaptive", {})
        lines.append(f"adaptive attack on {k}: fooled and undetected {f(ad['fooled_and_evaded_rate'])} "
                     f"(non-adaptive {f(na.get('fooled_and_evaded_rate'))})")
    return "\n".join(lines + format_families(doc))


def format_families(doc: dict[str, Any]) -> list[str]:
    """Text tables of the family sections: leave-one-family-out, guarded components, the adaptive curve."""
    f = (lambda v: "   n/a" if v is None else f"{v:.3f}")  # noqa: E731
    lines = []
    lofo = doc.get("leave_one_family_out")
    if lofo:
        lines.append(f"leave-one-family-out ({lofo['detector']}): AUROC / TPR@5% on family X, trained without X | "
                     "with every family")
        for r in lofo["table"]:
            lines.append(f"  {r['family']:15s} {r['tag']:16s} {f(r['auroc_held_out'])} / "
                         f"{f(r['tpr_at_5fpr_held_out'])} | {f(r['auroc_all'])} / {f(r['tpr_at_5fpr_all'])}")
    for k, c in doc.get("components", {}).items():
        lines.append(f"{k} parts, standardised (median clean -> attacked; AUROC alone); guarded AUROC:")
        for t, r in c["per_attack"].items():
            lines.append(f"  {r['family']:15s} {t:16s} residual {f(r['residual_median_clean'])} -> "
                         f"{f(r['residual_median_attacked'])} ({f(r['auroc_residual'])}); margin "
                         f"{f(r['margin_median_clean'])} -> {f(r['margin_median_attacked'])} "
                         f"({f(r['auroc_margin'])}); guarded {f(r['auroc_guarded'])}")
    for k, c in doc.get("adaptive_curve", {}).items():
        if not c.get("applicable"):
            continue
        lines.append(f"adaptive curve on {k} (best of λ {c['lambdas']}): fooled and undetected")
        for p in c["points"]:
            lines.append(f"  eps {p['eps'] * 255:4.1f}/255 steps {p['steps']:4d}: {f(p['fooled_and_evaded_rate'])} "
                         f"(fooled {f(p['victim_fooled_rate'])}, evaded {f(p['detector_evaded_rate'])})")
    return lines
