"""Report section for ``fakescope adversarial-benchmark`` folders (``detector_eval.json`` + its PNG plots).

Per detector: the per-attack table, false-positive rates on processed clean images, the adaptive attack (and its
curve over ε and PGD steps), a guarded checkpoint's parts per attack and the cross-attack grid; after the detectors,
the results per attack family and leave-one-family-out. The plots are embedded. Every field may be missing (older
files): what is absent is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .attacks import eps_text
from .html import esc, fig_png, figure_bytes, figure_file, kv_table, note, table
from .sections import _figs

FORMAT_PREFIX = "fakescope-detector-eval"
FALLBACK_PLOTS = ("eps_curves.png", "cross_attack_*.png")  # looked for when the file names no plots


def is_detector_eval_doc(doc: Any) -> bool:
    """The parsed ``detector_eval.json`` of an adversarial benchmark."""
    return isinstance(doc, dict) and str(doc.get("format", "")).startswith(FORMAT_PREFIX)


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _num(v: Any, scale: float = 1.0) -> float | None:
    """A number (times ``scale``) or ``None`` for anything else."""
    return float(v) * scale if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _split_key(key: str) -> tuple[str, str]:
    """``"detector@trained_on"`` (a noisy-negatives key) as its two parts; no ``@``: the whole key, ``""``."""
    det, sep, trained = key.rpartition("@")
    return (det, trained) if sep else (key, "")


def _detectors(doc: dict[str, Any]) -> list[str]:
    """Every detector named anywhere in the document, in first-seen order."""
    names = [str(r.get("detector")) for r in _list(doc.get("per_attack")) if isinstance(r, dict)]
    names += [_split_key(k)[0] for k in _dict(_dict(doc.get("noisy_negatives")).get("fpr"))]
    for field in ("adaptive", "cross_attack", "checkpoints", "components", "adaptive_curve"):
        names += list(_dict(doc.get(field)))
    return list(dict.fromkeys(names))


def _summary(doc: dict[str, Any]) -> str:
    sizes = _dict(doc.get("sizes"))
    secs = _num(doc.get("seconds"))
    head = {"victim": doc.get("victim"), "data": doc.get("data"), "source": doc.get("source"),
            "split": doc.get("split"), "train / val / test source images": " / ".join(
                str(sizes.get(k, "—")) for k in ("train", "val", "test")) if sizes else None,
            "FPR target (validation thresholds)": doc.get("fpr_target"), "seed": doc.get("seed"),
            "degraded clean negatives for residual-cnn": doc.get("residual_negatives"),
            "pair leak train ↔ test": doc.get("pair_leak_train_test"),
            "pair leak val ↔ test": doc.get("pair_leak_val_test"),
            "run time (s)": None if secs is None else f"{secs:.1f}", "format": doc.get("format"),
            "fakescope version": doc.get("fakescope_version")}
    return kv_table({k: v for k, v in head.items() if v is not None})


def _attack_sets(doc: dict[str, Any]) -> str:
    rows = []
    for tag, s in _dict(doc.get("attacks")).items():
        s = _dict(s)
        rows.append([tag, s.get("attack"), s.get("norm"), eps_text(s.get("eps"), s.get("norm")) or "min-norm",
                     s.get("n"), s.get("clean_accuracy"), s.get("adversarial_accuracy"), s.get("success_rate"),
                     _num(s.get("linf_mean"), 255.0), s.get("l2_mean"), s.get("psnr_db_mean"), s.get("ssim_mean")])
    if not rows:
        return ""
    return "<h3>Attack sets</h3>" + table(
        ["tag", "attack", "norm", "ε", "images", "victim clean acc", "victim acc under attack", "success rate",
         "mean L∞ (/255)", "mean L2", "PSNR (dB)", "SSIM"], rows)


def _per_attack(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return note("no per-attack results for this detector")
    trained = len({r.get("trained_on") for r in rows}) > 1  # attack-trained: one row per training attack
    header = ["attack", *(["trained on"] if trained else []), "AUROC", "TPR at 1% FPR", "TPR at 5% FPR",
              "threshold", "threshold from", "TPR at threshold", "FPR at threshold", "n attacked", "n clean"]
    body = [[r.get("tag", r.get("attack")), *([r.get("trained_on")] if trained else []), r.get("auroc"),
             r.get("tpr_at_1fpr"), r.get("tpr_at_5fpr"), r.get("threshold"), r.get("threshold_source", "val-fpr"),
             r.get("tpr"), r.get("fpr"), r.get("n_attacked", r.get("n")), r.get("n_clean")] for r in rows]
    return "<h4>Detection per attack (attacked vs clean test images)</h4>" + table(header, body)


def _noisy(det: str, noisy: dict[str, Any], n_test: Any = None) -> str:
    """Rows: processed-image family; columns: one per training of ``det`` (its ``det@trained_on`` keys)."""
    cols = {_split_key(k)[1]: _dict(v) for k, v in _dict(noisy.get("fpr")).items() if _split_key(k)[0] == det}
    if not cols:
        return ""
    fams = _dict(noisy.get("families"))
    names = list(dict.fromkeys(name for v in cols.values() for name in v))
    header = ["processed clean images", "n", *(f"FPR ({t})" if t and len(cols) > 1 else "FPR" for t in cols)]
    rows = [[name, n_test if name == "clean" else _dict(fams.get(name)).get("n"), *(v.get(name) for v in cols.values())]
            for name in names]
    return ("<h4>False-positive rate on clean but processed images (at the shipped threshold)</h4>"
            + table(header, rows))


def _adaptive(a: dict[str, Any]) -> str:
    if not a:
        return ""
    title = "<h4>Adaptive attack (PGD against victim and detector together)</h4>"
    if a.get("applicable") is False:
        return title + note(f"not applicable: {a.get('reason', 'no reason given')}")
    lam = a.get("lambdas", a.get("lambda"))
    info = {"detector trained on": a.get("detector_trained_on"),
            "ε (/255)": None if _num(a.get("eps")) is None else f"{_num(a.get('eps'), 255.0):g}",
            "PGD steps": a.get("steps"), "λ (detector-loss weights)": lam}
    rows = []
    for label, key in (("adaptive", "adaptive"), ("non-adaptive (victim only)", "non_adaptive")):
        r = _dict(a.get(key))
        if r:
            rows.append([label, r.get("fooled_and_evaded_rate"), r.get("victim_fooled_rate"),
                         r.get("detector_evaded_rate"), r.get("n"), _num(r.get("linf_max"), 255.0)])
    return (title + kv_table({k: v for k, v in info.items() if v is not None}, ("setting", "value"))
            + table(["attack", "fooled and undetected", "victim fooled", "detector evaded", "n",
                     "max L∞ (/255)"], rows))


def _cross(c: dict[str, Any]) -> str:
    train, test = [str(t) for t in _list(c.get("train"))], [str(t) for t in _list(c.get("test"))]
    if not train or not test:
        return ""
    out = ""
    for key, what in (("auroc", "AUROC"), ("tpr_at_5fpr", "TPR at 5% FPR"), ("tpr_at_threshold", "TPR at threshold")):
        grid = _list(c.get(key))
        if grid:
            rows = [[t, *_list(grid[i] if i < len(grid) else None)] for i, t in enumerate(train)]
            out += (f"<h4>Cross-attack {esc(what)} (rows: attack trained on, columns: attack tested on)</h4>"
                    + table(["trained on \\ tested on", *test], rows))
    return out


# ---- attack families (``adversarial/families.py``, ``adaptive.adaptive_curve``) ---------------------------------


def _families(doc: dict[str, Any]) -> str:
    """One table per attack family: every detector's row on each of the family's attacks."""
    fams = {str(f): [r for r in _list(rows) if isinstance(r, dict)] for f, rows in _dict(doc.get("families")).items()}
    fams = {f: rows for f, rows in fams.items() if rows}
    if not fams:
        return ""
    attacks = _dict(doc.get("attacks"))
    header = ["attack", "detector", "trained on", "ε", "attack success rate", "AUROC", "TPR at 5% FPR",
              "TPR at threshold", "FPR at threshold", "AUROC (fooling only)", "TPR at threshold (fooling only)",
              "n fooling"]
    parts = ['<h3>Detection per attack family</h3><p class="muted">The per-attack rows regrouped by attack family '
             "(gradient, score-based, decision-based, minimum-norm, spatial): each detector at its threshold; "
             "&quot;fooling only&quot;: the attacked copies that change the victim's answer.</p>"]
    for fam, rows in fams.items():
        rows = sorted(rows, key=lambda r: str(r.get("tag")))  # stable: the detectors of one attack side by side
        body = [[r.get("tag"), r.get("detector"), r.get("trained_on"),
                 eps_text(r.get("eps"), _dict(attacks.get(str(r.get("tag")))).get("norm")),
                 r.get("attack_success_rate"), r.get("auroc"), r.get("tpr_at_5fpr"), r.get("tpr"), r.get("fpr"),
                 r.get("auroc_fooled"), r.get("tpr_fooled"), r.get("n_fooled")] for r in rows]
        parts.append(f"<h4>Family {esc(fam)}</h4>" + table(header, body))
    return "".join(parts)


def _minus(a: Any, b: Any) -> float | None:
    x, y = _num(a), _num(b)
    return None if x is None or y is None else x - y


def _leave_one_out(lofo: dict[str, Any]) -> str:
    """Held-out family X vs every family: the detector's scores on X's attacks, and what each run trained on."""
    rows = [r for r in _list(lofo.get("table")) if isinstance(r, dict)]
    if not rows:
        return ""
    det = lofo.get("detector") or "the detector"
    body = [[r.get("family"), r.get("tag"), r.get("auroc_held_out"), r.get("auroc_all"),
             _minus(r.get("auroc_held_out"), r.get("auroc_all")), r.get("tpr_at_5fpr_held_out"),
             r.get("tpr_at_5fpr_all"), r.get("tpr_at_threshold_held_out"), r.get("fpr_at_threshold_held_out")]
            for r in rows]
    runs = [["every family" if held == "all" else f"without {held}", len(_list(_dict(run).get("trained_on"))),
             _dict(run).get("n_pairs"), ", ".join(map(str, _list(_dict(run).get("trained_on"))))]
            for held, run in _dict(lofo.get("runs")).items()]
    return (f"<h3>Leave-one-family-out: {esc(det)}</h3>"
            f'<p class="muted">{esc(det)} fitted on the training pairs of every attack outside family X and tested '
            "on X's attacks, beside the same detector fitted on every family: the gap is what not having seen "
            "X costs.</p>"
            + table(["held-out family", "attack", "AUROC (trained without)", "AUROC (trained on all)", "Δ AUROC",
                     "TPR at 5% FPR (without)", "TPR at 5% FPR (all)", "TPR at threshold (without)",
                     "FPR at threshold (without)"], body)
            + (table(["training run", "attacks", "training pairs", "attacks trained on"], runs) if runs else ""))


def _components(c: dict[str, Any]) -> str:
    """A guarded checkpoint's two standardised parts per attack: medians clean → attacked, AUROC of each alone."""
    per = {str(t): _dict(r) for t, r in _dict(c.get("per_attack")).items()}
    if not per:
        return ""
    med = [_num(v) for v in _list(c.get("clean_median"))]
    info = {"checkpoint": c.get("checkpoint"),
            "residual median, all clean test images": med[0] if med else None,
            "margin median, all clean test images": med[1] if len(med) > 1 else None}
    body = [[t, r.get("family"), r.get("n"), r.get("residual_median_clean"), r.get("residual_median_attacked"),
             r.get("auroc_residual"), r.get("margin_median_clean"), r.get("margin_median_attacked"),
             r.get("auroc_margin"), r.get("auroc_guarded")] for t, r in per.items()]
    return ("<h4>Guarded checkpoint parts per attack (residual logit, −log victim margin)</h4>"
            '<p class="muted">Both parts standardised as the checkpoint does (centre and scale fitted on clean '
            "calibration images); medians on the clean and the attacked test images of each attack, and the AUROC "
            "of each part alone beside the guarded score's.</p>"
            + kv_table({k: v for k, v in info.items() if v is not None}, ("setting", "value"))
            + table(["attack", "family", "n", "residual median clean", "residual median attacked",
                     "residual AUROC", "margin median clean", "margin median attacked", "margin AUROC",
                     "guarded AUROC"], body))


def curve_png(points: list[dict[str, Any]]) -> bytes | None:
    """PNG of the adaptive evasion rate (fooled and undetected) against PGD steps, one line per ε; ``None``: none."""
    from matplotlib.figure import Figure

    lines: dict[float, list[tuple[float, float]]] = {}
    for p in points:
        eps, steps, rate = _num(p.get("eps")), _num(p.get("steps")), _num(p.get("fooled_and_evaded_rate"))
        if eps is not None and steps is not None and rate is not None:
            lines.setdefault(eps, []).append((steps, rate))
    if not lines:
        return None
    fig = Figure(figsize=(5.2, 3.4), dpi=110)
    ax = fig.subplots()
    for eps, pts in sorted(lines.items()):
        pts.sort()
        ax.plot([s for s, _ in pts], [r for _, r in pts], "o-", label=f"ε {eps * 255:g}/255")
    ax.set(title="Adaptive PGD: fooled and undetected", xlabel="PGD steps", ylabel="evasion rate",
           ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig_png(fig)


def _adaptive_curve(c: dict[str, Any]) -> str:
    """The adaptive attack's evasion rate over a grid of ε and PGD steps: settings, the plot, the points."""
    if not c:
        return ""
    title = "<h4>Adaptive evasion against PGD steps and ε</h4>"
    if c.get("applicable") is False:
        return title + note(f"not applicable: {c.get('reason', 'no reason given')}")
    points = [p for p in _list(c.get("points")) if isinstance(p, dict)]
    if not points:
        return title + note("the adaptive curve holds no points")
    info = {"λ (detector-loss weights, best per image)": c.get("lambdas"), "note": c.get("note")}
    png = curve_png(points)
    rows = [[eps_text(p.get("eps"), "linf"), p.get("steps"), p.get("fooled_and_evaded_rate"),
             p.get("victim_fooled_rate"), p.get("detector_evaded_rate"), p.get("n"), _num(p.get("linf_max"), 255.0)]
            for p in points]
    return (title + kv_table({k: v for k, v in info.items() if v is not None}, ("setting", "value"))
            + (_figs([figure_bytes(png, "Adaptive evasion rate against PGD steps, one line per ε")]) if png else "")
            + table(["ε", "PGD steps", "fooled and undetected", "victim fooled", "detector evaded", "n",
                     "max L∞ (/255)"], rows))


def _plot_files(folder: Path, doc: dict[str, Any]) -> tuple[dict[str, Path], list[str]]:
    """Plot name → PNG beside ``detector_eval.json`` (a listed path is looked up by its file name there, since
    the file records it relative to wherever the benchmark ran), and notes for listed plots that are missing."""
    plots, missing = {}, []
    for name, p in _dict(doc.get("plots")).items():
        f = folder / Path(str(p)).name
        if f.suffix.lower() == ".png" and f.is_file():
            plots[str(name)] = f
        else:
            missing.append(f"plot {name!r} ({p}) is not beside detector_eval.json")
    if "plots" not in doc:
        plots = {f.stem: f for pat in FALLBACK_PLOTS for f in sorted(folder.glob(pat)) if f.is_file()}
    return plots, missing


def _caption(name: str) -> str:
    if name == "eps_curves":
        return "AUROC against ε, one panel per detector"
    if name.startswith("cross_attack_"):
        return f"{name.removeprefix('cross_attack_')}: AUROC, trained on (rows) × tested on (columns)"
    return name


def _detector(det: str, doc: dict[str, Any], plots: dict[str, Path]) -> str:
    rows = [r for r in _list(doc.get("per_attack")) if isinstance(r, dict) and str(r.get("detector")) == det]
    trained = list(dict.fromkeys(str(r.get("trained_on")) for r in rows if r.get("trained_on") is not None))
    ck = _dict(_dict(doc.get("checkpoints")).get(det))
    parts = [f"<h3>Detector {esc(det)}</h3>"]
    if trained:
        parts.append(f'<p class="muted">trained on: {esc(", ".join(trained))}</p>')
    if ck:
        parts.append(kv_table({k.replace("_", " "): ck.get(k) for k in (
            "path", "arch", "threshold", "threshold_source", "checkpoint_threshold", "val_fpr_at_threshold",
            "n_val", "temperature", "tta", "parameters_unchanged", "weights_file_unchanged") if k in ck},
            ("checkpoint", "value")))
    parts.append(_per_attack(rows))
    parts.append(_noisy(det, _dict(doc.get("noisy_negatives")), _dict(doc.get("sizes")).get("test")))
    parts.append(_adaptive(_dict(_dict(doc.get("adaptive")).get(det))))
    parts.append(_adaptive_curve(_dict(_dict(doc.get("adaptive_curve")).get(det))))
    parts.append(_components(_dict(_dict(doc.get("components")).get(det))))
    parts.append(_cross(_dict(_dict(doc.get("cross_attack")).get(det))))
    cross_png = plots.get(f"cross_attack_{det}")
    if cross_png is not None:
        parts.append(_figs([figure_file(cross_png, _caption(f"cross_attack_{det}"))]))
    return "".join(parts)


def detector_eval_section(folder: Path, doc: dict[str, Any]) -> tuple[str, str]:
    """Summary, attack sets, general plots, then one block per detector (a malformed file: a note and its values)."""
    try:
        return "Detector benchmark", _body(folder, doc)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OSError) as e:
        return "Detector benchmark", note(f"detector_eval.json could not be rendered ({type(e).__name__}: {e}); "
                                          "its top-level values:") + kv_table(
            {k: v for k, v in doc.items() if not isinstance(v, (dict, list))})


def _body(folder: Path, doc: dict[str, Any]) -> str:
    plots, missing = _plot_files(folder, doc)
    dets = _detectors(doc)
    general = [figure_file(f, _caption(n)) for n, f in plots.items()
               if not (n.startswith("cross_attack_") and n.removeprefix("cross_attack_") in dets)]
    parts = ['<p class="muted">from detector_eval.json</p>', _summary(doc)]
    parts += [note(m) for m in missing]
    parts += [note(f"skipped: {s.get('detector')} trained on {s.get('trained_on')}: {s.get('reason')}")
              for s in map(_dict, _list(doc.get("skipped")))]
    parts.append(_figs(general))
    parts.append(_attack_sets(doc))
    parts += [_detector(d, doc, plots) for d in dets] or [note("the file names no detector")]
    parts += [_families(doc), _leave_one_out(_dict(doc.get("leave_one_family_out")))]
    return "".join(parts)
