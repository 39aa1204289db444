"""``/api/explain``: the default model, the verdict in the title and headers, the size warning, any file name."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from fakescope.explain.fonts import safe_title  # noqa: E402
from fakescope.explain.render import _render, verdict_text  # noqa: E402
from fakescope.scanning.demo import samples_dir  # noqa: E402
from fakescope.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(["adversarial", "victim", "fast"]))  # the adversarial model first on purpose


@pytest.fixture()
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the server asked ``_render`` to draw (verdict and title), recorded, then drawn as usual."""
    import fakescope.explain.render as render

    calls: list[dict[str, Any]] = []
    real = render._render

    def spy(image: np.ndarray, heats: dict, verdict: str, detected: bool, title: str, png: Path, up: int) -> None:
        calls.append({"verdict": verdict, "detected": detected, "title": title})
        real(image, heats, verdict, detected, title, png, up)

    monkeypatch.setattr(render, "_render", spy)
    return calls


def _sample(kind: str = "FAKE") -> tuple[str, bytes]:
    p = sorted((samples_dir() / kind).glob("*.jpg"))[0]
    return p.name, p.read_bytes()


def test_verdict_text_shows_p_label1_and_threshold() -> None:
    assert verdict_text(["REAL", "FAKE"], "REAL", 0.989, 0.999) == "REAL — P(FAKE) 0.989, threshold 0.999"
    assert verdict_text(["clean", "attacked"], "attacked", 0.7512, 0.75) == \
        "attacked — P(attacked) 0.751, threshold 0.750"
    # enough digits that the printed values compare as the real ones (0.989 vs 0.989 would read as FAKE)
    assert verdict_text(["REAL", "FAKE"], "REAL", 0.9891, 0.9894) == "REAL — P(FAKE) 0.9891, threshold 0.9894"
    assert verdict_text(["cat", "dog", "ship"], "ship", 0.998, None) == "ship 0.998"


def test_explain_defaults_to_the_ai_generated_detector(client: TestClient, drawn: list[dict[str, Any]]) -> None:
    r = client.post("/api/explain", files={"file": _sample()}, data={"threshold": "0.999"})
    assert r.status_code == 200 and r.headers["x-fakescope-model"] == "fast"
    score = float(r.headers["x-fakescope-score"])
    assert 0.5 < score < 0.999 and r.headers["x-fakescope-label"] == "REAL"  # under the asked threshold
    assert r.headers["x-fakescope-threshold"] == "0.999000"
    assert drawn[-1]["verdict"] == verdict_text(["REAL", "FAKE"], "REAL", round(score, 6), 0.999)
    assert drawn[-1]["verdict"].startswith("REAL — P(FAKE) 0.9") and not drawn[-1]["detected"]
    named = client.post("/api/explain", files={"file": _sample()}, data={"model": "adversarial"})
    assert named.status_code == 200 and named.headers["x-fakescope-model"] == "adversarial"
    assert "JPEG" in named.headers["x-fakescope-warning"]  # the adversarial row's own warning, as /api/scan gives


def test_explain_keeps_the_size_warning(client: TestClient, drawn: list[dict[str, Any]]) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (300, 120), (200, 20, 20)).save(buf, format="PNG")
    r = client.post("/api/explain", files={"file": ("猫の写真.png", buf.getvalue())})
    assert r.status_code == 200
    warning = r.headers["x-fakescope-warning"]
    assert "300x120" in warning and "extrapolated" in warning
    scan_row = client.post("/api/scan", files={"files": ("猫の写真.png", buf.getvalue())},
                           data={"model": "fast"}).json()[0]
    assert scan_row["warning"] == warning and scan_row["score"] == pytest.approx(float(r.headers["x-fakescope-score"]))
    title = drawn[-1]["title"]
    assert title.startswith("猫の写真.png — fast") and " ".join(title.split("\n")[1:]) == warning


def test_titles_render_any_file_name(tmp_path: Path) -> None:
    text, families = safe_title("猫の写真 $x$\x07.png")
    assert "\\x07" in text and r"\$x\$" in text and families[0]
    if "猫" in text:  # a CJK font is installed (Debian: fonts-noto-cjk): it is named as a fallback
        assert len(families) > 1
    else:
        assert "\\u732b" in text
    img = np.zeros((32, 32, 3), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for every box it draws
        _render(img, {"gradcam": np.ones((32, 32))}, "REAL — P(FAKE) 0.010, threshold 0.5", False,
                "猫の写真 😀 файл ملف.png — fast\nsecond line", tmp_path / "t.png", 4)
    assert (tmp_path / "t.png").stat().st_size > 1000
