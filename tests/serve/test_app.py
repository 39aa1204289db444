"""Web app and HTTP API: same verdicts as ``scan``, per-file errors, size limit, Grad-CAM PNG, static page, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

import fakescope  # noqa: E402
from fakescope.inference.scorer import Detector  # noqa: E402
from fakescope.scanning.demo import samples_dir  # noqa: E402
from fakescope.scanning.output import FIELDS  # noqa: E402
from fakescope.scanning.scan import scan  # noqa: E402
from fakescope.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def fast() -> Detector:
    return Detector.load("fast")


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app())  # default: every bundled checkpoint


@pytest.fixture(scope="module")
def samples() -> list[Path]:
    return [sorted((samples_dir() / c).glob("*.jpg"))[0] for c in ("REAL", "FAKE")]


def _files(*items: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


def test_health(client: TestClient) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True and body["version"] == fakescope.__version__
    assert "fast" in body["models"]


def test_models_lists_bundled_fast(client: TestClient, fast: Detector) -> None:
    models = {m["name"]: m for m in client.get("/api/models").json()}
    m = models["fast"]
    assert m["task"] == "synthetic" and m["classes"] == ["REAL", "FAKE"]
    assert m["threshold"] == pytest.approx(fast.threshold)
    assert m["temperature"] == pytest.approx(fast.net.spec.temperature)
    assert m["image_size"] == 32 and 0.5 < m["metrics"]["test_accuracy"] <= 1.0


def test_scan_matches_python_scan(client: TestClient, samples: list[Path], fast: Detector) -> None:
    r = client.post("/api/scan", files=_files(*[(p.name, p.read_bytes()) for p in samples]), data={"model": "fast"})
    assert r.status_code == 200
    rows = r.json()
    expected = scan([str(p) for p in samples], fast)
    assert len(rows) == len(expected) == 2
    for row, exp, p in zip(rows, expected, samples, strict=True):
        assert set(row) == set(FIELDS)
        assert row["path"] == p.name and row["model"] == "fast" and row["task"] == "synthetic"
        assert row["error"] is None and row["label"] == exp.label
        assert row["score"] == pytest.approx(exp.score, abs=1e-6)
        assert row["threshold"] == pytest.approx(fast.threshold)


def test_threshold_override_and_unknown_model(client: TestClient, samples: list[Path]) -> None:
    one = _files((samples[0].name, samples[0].read_bytes()))
    rows = client.post("/api/scan", files=one, data={"threshold": "0", "model": "fast"}).json()
    assert rows[0]["label"] == "FAKE" and rows[0]["threshold"] == 0.0
    r = client.post("/api/scan", files=one, data={"model": "nope"})
    assert r.status_code == 400 and "unknown model" in r.json()["detail"]
    assert client.post("/api/scan", files=one, data={"threshold": "2"}).status_code == 400


def test_broken_uploads_get_row_errors(client: TestClient, samples: list[Path]) -> None:
    good = samples[1]
    r = client.post("/api/scan", files=_files(("empty.jpg", b""), ("notes.png", b"just some text\n"),
                                              (good.name, good.read_bytes())), data={"model": "fast"})
    assert r.status_code == 200
    rows = {row["path"]: row for row in r.json()}
    assert "empty" in rows["empty.jpg"]["error"] and rows["empty.jpg"]["label"] is None
    assert "not a readable image" in rows["notes.png"]["error"] and rows["notes.png"]["score"] is None
    assert rows[good.name]["error"] is None and rows[good.name]["label"] in ("REAL", "FAKE")


def test_no_files_is_a_clear_400(client: TestClient) -> None:
    r = client.post("/api/scan", data={"model": "fast"})
    assert r.status_code == 400 and "no files" in r.json()["detail"]


def test_oversize_upload_is_413(fast: Detector, samples: list[Path]) -> None:
    small = TestClient(create_app([fast], max_upload_mb=0.05))
    big = _files(("big.jpg", b"\xff" * 200_000))
    r = small.post("/api/scan", files=big)
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    r = small.post("/api/scan", content=iter([b"x" * 65_536] * 4),  # streamed: no Content-Length to trust
                   headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413
    ok = small.post("/api/scan", files=_files((samples[0].name, samples[0].read_bytes())))
    assert ok.status_code == 200 and ok.json()[0]["error"] is None


def test_scan_rows_equal_scan_for_every_model(client: TestClient, tmp_path: Path, samples: list[Path]) -> None:
    """Every field of every model's row (warnings too: a wide PNG, a JPEG for the adversarial model) as ``scan``."""
    from PIL import Image

    wide = tmp_path / "wide.png"
    Image.new("RGB", (300, 90), (30, 120, 200)).save(wide)
    files = [samples[0], wide]
    r = client.post("/api/scan", files=_files(*[(p.name, p.read_bytes()) for p in files]))
    assert r.status_code == 200
    models = client.app.state.detectors  # type: ignore[attr-defined]
    expected = {(Path(v.path).name, v.model): v.to_dict() for v in scan([str(p) for p in files], models)}
    got = {(row["path"], row["model"]): row for row in r.json()}
    assert set(got) == set(expected) and len(got) == 2 * len(models)
    for key, row in got.items():
        exp = expected[key]
        assert {k: row[k] for k in FIELDS if k not in ("path", "score")} == \
            {k: exp[k] for k in FIELDS if k not in ("path", "score")}, key
        assert row["score"] == pytest.approx(exp["score"], abs=1e-6)
    assert "extrapolated" in got[("wide.png", "fast")]["warning"]
    assert "JPEG" in got[(samples[0].name, "adversarial")]["warning"]


def test_explain_returns_png(client: TestClient, samples: list[Path]) -> None:
    p = samples[1]
    r = client.post("/api/explain", files={"file": (p.name, p.read_bytes(), "image/jpeg")}, data={"model": "fast"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n" and len(r.content) > 5000
    assert r.headers["x-fakescope-label"] in ("REAL", "FAKE") and r.headers["x-fakescope-model"] == "fast"
    bad = client.post("/api/explain", files={"file": ("x.png", b"text", "image/png")})
    assert bad.status_code == 422 and "not a readable image" in bad.json()["error"]


def test_docs_and_openapi_request_bodies(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/api/openapi.json" in r.text
    assert "cdn" not in r.text.lower() and "https://" not in r.text  # offline: no external requests
    if "swagger-ui-bundle.js" in r.text:  # Swagger UI from this server's own files (fastapi-offline installed)
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    schema = client.get("/api/openapi.json").json()
    for path, field in (("/api/scan", "files"), ("/api/explain", "file")):
        body = schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert field in body["properties"] and body["required"] == [field]
        assert {"model", "threshold"} <= set(body["properties"])
    assert "413" in schema["paths"]["/api/scan"]["post"]["responses"]
    assert "image/png" in schema["paths"]["/api/explain"]["post"]["responses"]["200"]["content"]


def test_index_page(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<form id="upload-form"' in html and 'type="file"' in html and "/api/scan" in html
    assert "http://" not in html and "https://" not in html  # offline: no external requests
