"""The server's budgets and queues: pixel limits from headers, 503 + Retry-After when full, batching, workers."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from fakescope.inference.scorer import Detector  # noqa: E402
from fakescope.scanning.demo import samples_dir  # noqa: E402
from fakescope.scanning.scan import scan  # noqa: E402
from fakescope.serve import create_app, decoding  # noqa: E402
from fakescope.serve.batching import Batcher  # noqa: E402
from fakescope.serve.limits import Limits  # noqa: E402


@pytest.fixture(scope="module")
def fast() -> Detector:
    return Detector.load("fast")


@pytest.fixture(scope="module")
def small() -> tuple[str, bytes]:
    p = sorted((samples_dir() / "FAKE").glob("*.jpg"))[0]
    return p.name, p.read_bytes()


def _png(w: int, h: int, mode: str = "1") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h)).save(buf, format="PNG")  # a few KB that decode to w*h pixels
    return buf.getvalue()


def _post(client: TestClient, *files: tuple[str, bytes], path: str = "/api/scan") -> object:
    field = "file" if path == "/api/explain" else "files"
    return client.post(path, files=[(field, (n, d, "application/octet-stream")) for n, d in files])


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_pending"):
        Limits(max_pending=0)
    with pytest.raises(ValueError, match="whole number"):
        Limits(max_files=2.5)
    with pytest.raises(TypeError, match="unknown server limit"):
        create_app(["fast"], max_pendng=3)


def test_request_pixel_budget_is_413_before_decoding(fast: Detector, small: tuple[str, bytes],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client = TestClient(create_app([fast], max_request_pixels=1_000_000))
    decoded: list[list[str]] = []
    real = decoding.decode_files
    monkeypatch.setattr("fakescope.serve.pipeline.decode_files", lambda p, *a: decoded.append(p) or real(p, *a))
    big = _png(800, 800)  # 640,000 pixels each: two of them are over the budget
    r = _post(client, ("a.png", big), ("b.png", big), small)
    assert r.status_code == 413
    body = r.json()
    assert body["limit"] == "max_request_pixels" and body["allowed"] == 1_000_000
    assert body["requested"] in (2 * 640_000, 2 * 640_000 + 32 * 32) and "--max-request-pixels" in body["detail"]
    assert decoded == []  # refused from the headers: nothing was decoded
    ok = _post(client, ("a.png", big), small)
    assert ok.status_code == 200 and all(row["error"] is None for row in ok.json())


def test_budget_refuses_before_the_rest_of_the_body_is_read(fast: Detector) -> None:
    """Driven at the ASGI level: the body comes in messages; none after the one that passed the budget is read."""
    import asyncio

    import httpx

    app = create_app([fast], max_request_pixels=1_000_000)
    req = httpx.Request("POST", "http://t/api/scan", files=[("files", (f"{i}.png", _png(800, 800), "image/png"))
                                                            for i in range(6)])
    body, parts = req.read(), 6
    step = len(body) // parts + 1
    messages = [{"type": "http.request", "body": body[i:i + step], "more_body": i + step < len(body)}
                for i in range(0, len(body), step)]
    read: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        read.append(1)
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/scan", "raw_path": b"/api/scan", "query_string": b"",
             "headers": [(b"content-type", req.headers["content-type"].encode()),
                         (b"content-length", str(len(body)).encode())], "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5), "root_path": "", "app": app}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert len(read) <= 3 and messages  # two parts pass the budget; the rest of the body was never read


def test_file_pixel_limit_refuses_that_file_only(fast: Detector, small: tuple[str, bytes]) -> None:
    client = TestClient(create_app([fast], max_file_pixels=500_000))
    rows = {row["path"]: row for row in _post(client, ("big.png", _png(1000, 1000)), small).json()}
    assert "refused before decoding" in rows["big.png"]["error"] and "--max-file-pixels" in rows["big.png"]["error"]
    assert rows[small[0]]["error"] is None and rows[small[0]]["label"] in ("REAL", "FAKE")
    r = _post(client, ("big.png", _png(1000, 1000)), path="/api/explain")
    assert r.status_code == 422 and r.json()["limit"] == "max_file_pixels"


def test_big_jpeg_counts_at_its_reduced_decode_size(tmp_path: Path) -> None:
    p = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (90, 90, 90)).save(p, quality=70)
    w, h, pixels = decoding.decoded_pixels(str(p), 32)  # type: ignore[misc]
    assert (w, h) == (4000, 3000) and pixels == 500 * 375  # DCT-domain 1/8 reduction, as decode_image does
    assert decoding.decoded_pixels(str(tmp_path), 32) is None


def test_too_many_files_is_413(fast: Detector, small: tuple[str, bytes]) -> None:
    client = TestClient(create_app([fast], max_files=2))
    r = _post(client, small, small, small)
    assert r.status_code == 413 and r.json()["limit"] == "max_files"
    assert _post(client, small, small).status_code == 200


@pytest.fixture()
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Heavy decodes (decode_workers=0: a thread of the server) wait until the event is set."""
    release = threading.Event()
    real = decoding.decode_files

    def slow(paths: list[str], *args: object) -> object:
        assert release.wait(20)
        return real(paths, *args)

    monkeypatch.setattr(decoding, "decode_files", slow)
    yield release
    release.set()


def _wait_for(cond: object, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_heavy_overload_is_503_while_small_requests_answer(fast: Detector, small: tuple[str, bytes],
                                                           held: threading.Event) -> None:
    app = create_app([fast], heavy_pixels=10_000, decode_workers=0, max_heavy_pending=1, retry_after=3)
    heavy = ("heavy.png", _png(400, 400))
    with TestClient(app) as client:
        first: dict[str, object] = {}
        t = threading.Thread(target=lambda: first.update(r=_post(client, heavy)))
        t.start()
        _wait_for(lambda: app.state.engine.heavy_slots.used == 1)
        t0 = time.perf_counter()
        busy = _post(client, heavy)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "3"
        assert "--max-heavy-pending" in busy.json()["detail"] and busy.json()["retry_after"] == 3
        ok = _post(client, small)  # another client's small request is not queued behind the heavy one
        elapsed = time.perf_counter() - t0
        assert ok.status_code == 200 and ok.json()[0]["error"] is None
        assert elapsed < 5 and t.is_alive()
        held.set()
        t.join(20)
        r = first["r"]
        assert r.status_code == 200 and r.json()[0]["error"] is None  # type: ignore[attr-defined]
        assert app.state.engine.heavy_slots.used == 0


def test_pending_cap_is_503_before_the_body_is_read(fast: Detector, small: tuple[str, bytes],
                                                   held: threading.Event) -> None:
    app = create_app([fast], heavy_pixels=10_000, decode_workers=0, max_pending=1)
    with TestClient(app) as client:
        t = threading.Thread(target=lambda: _post(client, ("heavy.png", _png(400, 400))))
        t.start()
        _wait_for(lambda: app.state.pending.used == 1 and app.state.engine.heavy_slots.used == 1)
        busy = _post(client, small)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
        assert "--max-pending" in busy.json()["detail"]
        assert client.get("/api/health").json()["load"]["pending"] == 1  # GETs always pass
        held.set()
        t.join(20)
        assert _post(client, small).status_code == 200


def test_heavy_files_decode_in_a_worker_process_with_scan_rows(fast: Detector, tmp_path: Path) -> None:
    img = tmp_path / "heavy.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(img)
    with TestClient(create_app([fast], heavy_pixels=10_000, decode_workers=1)) as client:
        rows = _post(client, ("heavy.png", img.read_bytes())).json()
    exp = scan([str(img)], fast)[0]
    assert rows[0]["label"] == exp.label and rows[0]["score"] == pytest.approx(exp.score, abs=1e-6)
    assert rows[0]["warning"] == exp.warning and "extrapolated" in rows[0]["warning"]


class _Recorder:
    """A stand-in Scorer: records each batch; the first call waits for ``go``."""

    name, task, uses_torch = "rec", "synthetic", False

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.go = threading.Event()

    def scores(self, images: np.ndarray, batch_size: int | None = None, bf16: bool = False) -> np.ndarray:
        if not self.sizes:
            self.go.wait(10)
        self.sizes.append(len(images))
        return images[:, 0, 0, 0].astype(np.float32)


def test_batcher_joins_waiting_requests_into_one_pass() -> None:
    rec, batcher = _Recorder(), Batcher(max_batch=8)
    arrays = [np.full((n, 2, 2, 3), k, np.uint8) for k, n in enumerate((1, 2, 3, 5))]
    first = batcher.submit(rec, arrays[0])  # type: ignore[arg-type]
    _wait_for(lambda: first.running())
    later = [batcher.submit(rec, a) for a in arrays[1:]]  # type: ignore[arg-type]
    rec.go.set()
    results = [f.result(10) for f in [first, *later]]
    assert [r.tolist() for r in results] == [[k] * len(a) for k, a in enumerate(arrays)]
    assert rec.sizes == [1, 5, 5]  # the three waiting jobs: 2+3 fill one pass (room 8), 5 waits for the next
    big = batcher.submit(rec, np.zeros((20, 2, 2, 3), np.uint8))  # type: ignore[arg-type]
    assert len(big.result(10)) == 20 and rec.sizes[-3:] == [8, 8, 4]
    batcher.close()
