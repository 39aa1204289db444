"""The detector benchmark's attack-family sections: per-family tables, leave-one-family-out, guarded components and
the adaptive curve; skipped for older files, every document string escaped."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fakescope.report import build_report
from fakescope.report.detectors import curve_png, detector_eval_section
from tests.helpers.report import assert_self_contained

# a real ``adversarial-benchmark`` file (benchmarks/results/adversarial_families.json) less the adaptive curve's
# convergence traces and the leave-one-family-out runs' per-attack metrics (its table repeats what is rendered)
FAMILIES_DOC = Path(__file__).parent / "detector_eval_families.json"
NEW_KEYS = ("families", "leave_one_family_out", "components", "adaptive_curve")
HEADINGS = ("Detection per attack family", "Family gradient", "Leave-one-family-out: residual-cnn",
            "Guarded checkpoint parts per attack", "Adaptive evasion against PGD steps and ε")


def _doc() -> dict[str, Any]:
    return json.loads(FAMILIES_DOC.read_text(encoding="utf-8"))


def _body(doc: dict[str, Any], folder: Path) -> str:
    title, body = detector_eval_section(folder, doc)
    assert title == "Detector benchmark"
    return body


def _cells(*values: str | float) -> str:
    """Consecutive table cells: text as written, numbers right-aligned (floats to 4 decimals)."""
    return "".join(f"<td>{v}</td>" if isinstance(v, str) else f'<td class="num">{v:.4f}</td>' if isinstance(v, float)
                   else f'<td class="num">{v}</td>' for v in values)


def test_report_renders_the_family_sections_of_a_real_benchmark(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "detector_eval.json").write_bytes(FAMILIES_DOC.read_bytes())
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert_self_contained(html)
    for text in (*HEADINGS, "Family decision-based", "Family minimum-norm", "Family score-based", "Family spatial",
                 "Adaptive evasion rate against PGD steps, one line per ε"):
        assert text in html, text
    assert html.count("<img") == 1  # the curve; the benchmark's own PNGs are not beside this copy
    # per family: hsj (decision-based) for the guarded checkpoint at its own threshold, ε unbounded
    assert "<tr>" + _cells("hsj", "checkpoint:adversarial", "checkpoint", "—", 0.9970, 0.6297, 0.0730,
                           0.0219, 0.0146, "—", "—", "—") + "</tr>" in html  # no fooling-only figures in this run
    assert _cells("pgd-l2-eps127.5", "checkpoint:adversarial", "checkpoint", "0.5") in html  # L2: ε as is
    assert _cells("pgd-eps8", "residual-cnn", "pgd-eps8", "8/255") in html
    # leave-one-family-out: hsj held out vs trained on all, the gap, and the run trained without gradient attacks
    assert _cells("decision-based", "hsj", 0.3045, 0.9301, -0.6256, 0.0292, 0.6496) in html
    assert _cells("without gradient", 6, 798) in html
    # guarded parts: hsj lowers the residual (AUROC 0.07) while the margin still reacts
    assert _cells("hsj", "decision-based", 137, 0.0482, -5.5907, 0.0701, -0.2343, 0.5825, 0.8012,
                  0.6297) in html
    # adaptive curve: ε 4/255 at 5 steps, and 8/255 at 50
    assert _cells("4/255", 5, 0.9759, 0.9759, 1.0000, 83, 4.0000) in html
    assert _cells("8/255", 50, 1.0000) in html
    # the per-checkpoint parts sit in that checkpoint's block, the family tables after every detector
    own = html.index("<h3>Detector checkpoint:adversarial</h3>")
    val = html.index("<h3>Detector checkpoint:adversarial:val-threshold</h3>")
    assert own < html.index("Adaptive evasion against PGD") < html.index("Guarded checkpoint parts") < val
    assert val < html.index("Detection per attack family") < html.index("Leave-one-family-out")


def test_older_documents_render_without_the_family_sections(tmp_path: Path) -> None:
    doc = _doc()
    old = {k: v for k, v in doc.items() if k not in NEW_KEYS}
    body = _body(old, tmp_path)
    assert "Detector residual-cnn" in body and "Cross-attack AUROC" in body
    for text in (*HEADINGS, "Family ", "<img"):
        assert text not in body, text
    # present but empty: the same page as without them
    assert _body({**old, **{k: {} for k in NEW_KEYS}}, tmp_path) == body
    assert _body({**old, "families": {"gradient": []}, "leave_one_family_out": {"table": []},
                  "components": {"checkpoint:adversarial": {"per_attack": {}}}}, tmp_path) == body


def test_adaptive_curve_not_applicable_or_without_points(tmp_path: Path) -> None:
    doc = {"format": "fakescope-detector-eval/1", "adaptive_curve": {
        "lid": {"applicable": False, "reason": "lid's score is not differentiable"},
        "kd": {"applicable": True, "lambdas": [1.0], "points": []}}}
    body = _body(doc, tmp_path)
    assert "Detector lid" in body and "Detector kd" in body  # named only by the curve, still a block each
    assert "not applicable: lid&#x27;s score is not differentiable" in body
    assert "the adaptive curve holds no points" in body and "<img" not in body


def test_curve_png() -> None:
    pts = [{"eps": e / 255, "steps": s, "fooled_and_evaded_rate": r}
           for e, s, r in ((4, 5, 0.5), (4, 10, 0.75), (8, 5, 1.0))]
    png = curve_png(pts)
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert curve_png([]) is None
    assert curve_png([{"eps": None, "steps": 5, "fooled_and_evaded_rate": 0.5},
                      {"eps": 4 / 255, "steps": 5, "fooled_and_evaded_rate": None}]) is None


@pytest.mark.parametrize("hostile", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'])
def test_family_sections_escape_document_strings(tmp_path: Path, hostile: str) -> None:
    row = {"detector": hostile, "trained_on": hostile, "tag": hostile, "eps": None, "auroc": 0.5}
    doc = {"format": "fakescope-detector-eval/1",
           "families": {hostile: [row]},
           "leave_one_family_out": {"detector": hostile, "families": {hostile: hostile},
                                    "runs": {hostile: {"trained_on": [hostile], "n_pairs": 3}},
                                    "table": [{"family": hostile, "tag": hostile, "auroc_held_out": 0.5}]},
           "components": {hostile: {"checkpoint": hostile, "clean_median": [0.0, 0.0],
                                    "per_attack": {hostile: {"family": hostile, "n": 3}}}},
           "adaptive_curve": {hostile: {"applicable": True, "lambdas": [1.0], "note": hostile,
                                        "points": [{"eps": 4 / 255, "steps": 5, "fooled_and_evaded_rate": 0.5}]}}}
    (tmp_path / "detector_eval.json").write_text(json.dumps(doc))
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    imgs = re.findall(r"<img\b[^>]*>", html)
    assert len(imgs) == 1 and imgs[0].startswith('<img src="data:image/png;base64,')  # only the curve's PNG
    escaped = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    assert html.count(escaped) >= 10  # headings, table cells, notes: every place the string is shown
    for text in ("Family " + escaped, "Leave-one-family-out: " + escaped, "without " + escaped):
        assert text in html, text
