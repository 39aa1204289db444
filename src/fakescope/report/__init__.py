"""``fakescope report``: one self-contained HTML page (every image embedded as a data URI) for a run folder.

What is recognised, in the folder itself and in its sub-folders (down to ``MAX_DEPTH`` levels):

* a **training run**: ``config.json`` (a ``TrainConfig``) with ``history.jsonl`` or ``model.json``;
* an **evaluation run** (``fakescope evaluate --out``): ``metrics.json`` with a confusion matrix and/or
  ``predictions.csv``, beside the ROC / PR / confusion / reliability / per-class plots;
* **attack runs** (``fakescope attack --out``): folders holding ``manifest.json`` + ``originals.npz`` +
  ``attacked.npz``, grouped by their parent folder (one section per ε sweep);
* **studies**: any ``*.json`` whose top-level object has a ``"study"`` key (robustness, evasion, learning curve);
* a **detector benchmark** (``fakescope adversarial-benchmark --out``): ``detector_eval.json`` (format
  ``fakescope-detector-eval/1``) beside the PNG plots its ``"plots"`` field names.

Each finding becomes a section; a folder with none of these is a ``ValueError``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..io import write_text
from .html import page

__all__ = ["Found", "build_report", "discover"]

MAX_DEPTH = 3  # sub-folder levels searched below the run folder
MAX_DIRS = 500  # folders visited at most (a report pointed at a dataset must not crawl it all)
MAX_JSON_BYTES = 20 << 20
ATTACK_FILES = ("manifest.json", "originals.npz", "attacked.npz")
DETECTOR_EVAL = "detector_eval.json"
SKIP_DIRS = {"__pycache__", "node_modules"}


@dataclass
class Found:
    """One recognised thing: ``kind`` is training | evaluation | attack | study | detector-eval."""

    kind: str
    path: Path  # the folder (training, evaluation, attack group) or the study's JSON file
    members: list[Path] = field(default_factory=list)  # attack: the per-ε folders
    doc: dict[str, Any] | None = None  # study, detector-eval: the parsed JSON


def _read_json(path: Path) -> Any:
    """Parsed JSON, or ``None`` when missing, too large or malformed (a report never fails on a stray file)."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_training(d: Path) -> bool:
    """``config.json`` holding a training config, beside ``history.jsonl`` or ``model.json``."""
    if not (d / "config.json").is_file() or not ((d / "history.jsonl").is_file() or (d / "model.json").is_file()):
        return False
    cfg = _read_json(d / "config.json")
    return isinstance(cfg, dict) and "arch" in cfg and "epochs" in cfg


def is_evaluation(d: Path) -> bool:
    """``metrics.json`` with a confusion matrix (what ``evaluate`` writes), or ``predictions.csv``."""
    if (d / "predictions.csv").is_file():
        return True
    m = _read_json(d / "metrics.json") if (d / "metrics.json").is_file() else None
    return isinstance(m, dict) and "confusion_matrix" in m and "accuracy" in m


def is_attack(d: Path) -> bool:
    """A folder written by ``adversarial.write_attack``."""
    if not all((d / f).is_file() for f in ATTACK_FILES):
        return False
    m = _read_json(d / "manifest.json")
    return isinstance(m, dict) and str(m.get("format", "")).startswith("fakescope-attack")


def detector_eval(d: Path) -> Found | None:
    """A folder written by ``fakescope adversarial-benchmark``: ``detector_eval.json`` with its format tag."""
    from .detectors import is_detector_eval_doc

    f = d / DETECTOR_EVAL
    doc = _read_json(f) if f.is_file() else None
    return Found("detector-eval", d, doc=doc) if is_detector_eval_doc(doc) else None


def _studies(d: Path) -> list[Found]:
    out = []
    for f in sorted(d.glob("*.json")):
        if f.name in ("config.json", "metrics.json", "manifest.json", "model.json", "last.json", DETECTOR_EVAL):
            continue
        doc = _read_json(f)
        if isinstance(doc, dict) and isinstance(doc.get("study"), str):
            out.append(Found("study", f, doc=doc))
    return out


def _subdirs(d: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError:
        return []
    return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
            and e.name not in SKIP_DIRS]


def discover(run_dir: str | os.PathLike[str], max_depth: int = MAX_DEPTH) -> list[Found]:
    """Everything ``build_report`` can render under ``run_dir``, in a stable order (breadth first, by name).

    The runs of a learning-curve study are summarised by the study, so its sub-folders are not searched.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found: list[Found] = []
    attack_groups: dict[Path, Found] = {}
    queue, visited = [(root, 0)], 0
    while queue and visited < MAX_DIRS:
        d, depth = queue.pop(0)
        visited += 1
        if is_training(d):
            found.append(Found("training", d))
        if is_evaluation(d):
            found.append(Found("evaluation", d))
        studies = _studies(d)
        found += studies
        bench = detector_eval(d)
        if bench is not None:
            found.append(bench)
        if is_attack(d):
            key = d if d == root else d.parent
            if key not in attack_groups:
                attack_groups[key] = Found("attack", key)
                found.append(attack_groups[key])
            attack_groups[key].members.append(d)
        if depth < max_depth and not any(s.doc and s.doc.get("study") == "learning_curve" for s in studies):
            queue += [(s, depth + 1) for s in _subdirs(d)]
    return found


def _label(path: Path, root: Path) -> str:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return str(path)
    return "" if str(rel) == "." else str(rel)


def build_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, gallery_k: int = 8,
                 examples: int = 6) -> Path:
    """Write one self-contained HTML page for ``run_dir`` (default ``run_dir/report.html``); returns its path.

    ``gallery_k``: most confident correct / wrong predictions shown per evaluation; ``examples``: attacked image
    pairs shown per attack folder. Raises ``ValueError`` when nothing under ``run_dir`` is recognised.
    """
    from .attacks import attack_section
    from .detectors import detector_eval_section
    from .sections import evaluation_section, study_section, training_section

    root = Path(run_dir)
    items = discover(root)
    if not items:
        raise ValueError(f"{root}: nothing to report: no training run (config.json + history.jsonl), evaluation "
                         "(metrics.json / predictions.csv), attack folder (manifest.json + .npz), study JSON or "
                         f"detector benchmark (detector_eval.json) found here or up to {MAX_DEPTH} folder levels "
                         "below")
    sections: list[tuple[str, str, str]] = []
    for i, item in enumerate(items):
        where = _label(item.path, root)
        if item.kind == "training":
            title, body = training_section(item.path)
        elif item.kind == "evaluation":
            title, body = evaluation_section(item.path, gallery_k)
        elif item.kind == "attack":
            title, body = attack_section(item.path, item.members, examples)
        elif item.kind == "detector-eval":
            title, body = detector_eval_section(item.path, item.doc or {})
        else:
            title, body = study_section(item.path, item.doc or {})
        sections.append((f"s{i}-{item.kind}", f"{title}: {where}" if where else title, body))
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    kinds = ", ".join(sorted({f.kind for f in items}))
    html = page(f"fakescope report: {root.resolve().name}",
                f"{root.resolve()} · {kinds} · generated {when} by fakescope {__version__}", sections)
    dest = Path(out) if out is not None else root / "report.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_text(dest, html)
    return dest
