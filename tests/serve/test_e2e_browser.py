"""The web page in a real browser (Playwright driving Debian's Chromium) against ``fakescope serve`` on loopback.

One REAL and one FAKE bundled sample and a 10000x10000 decompression bomb are uploaded, on a desktop and on a
390 px phone viewport: each image gets one card with both answers, Grad-CAM opens on demand, the bomb gets a
placeholder instead of a decoded thumbnail, and the phone page has no horizontal scroll. Screenshots are kept in
the test's tmp folder and, when ``FAKESCOPE_SCREENSHOTS`` names a folder (``docs/screenshots``), there too.

Skipped only when Playwright or Chromium is missing locally; ``.ci/run`` installs both.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from fakescope.models import list_bundled
from fakescope.scanning.demo import samples_dir

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = os.environ.get("FAKESCOPE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

pytestmark = pytest.mark.slow
ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 90_000
LONG_NAME = "IMG_20240612_183045_portrait-mode_holiday-photos_from_grandmas_garden_4501.jpg"
# Record what the page asks the browser to decode: the bomb must never reach a decoder.
SPY = """
window.__decoded = [];
const cib = window.createImageBitmap;
window.createImageBitmap = function (src, ...rest) {
  window.__decoded.push(src && src.name);
  return cib.call(this, src, ...rest);
};
const cou = URL.createObjectURL;
URL.createObjectURL = function (obj) { window.__decoded.push(obj && obj.name); return cou.call(URL, obj); };
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m fakescope.cli serve`` (every bundled model) on a free loopback port; its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "fakescope.cli", "serve", "--port", str(port)],
                                stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"fakescope serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(url + "/api/health", timeout=5) as r:  # noqa: S310 - loopback only
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"fakescope serve did not answer in 180 s:\n{log.read_text(errors='replace')}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (10000, 10000)).save(buf, "PNG")  # ~12 KB of file, 100 megapixels once decoded
    return buf.getvalue()


def _uploads() -> list[dict[str, Any]]:
    real, fake = samples_dir() / "REAL" / "4501.jpg", samples_dir() / "FAKE" / "5500.jpg"
    return [{"name": LONG_NAME, "mimeType": "image/jpeg", "buffer": real.read_bytes()},
            {"name": fake.name, "mimeType": "image/jpeg", "buffer": fake.read_bytes()},
            {"name": "bomb.png", "mimeType": "image/png", "buffer": _bomb()}]


def _scan_and_explain(page: Any, url: str) -> dict[str, Any]:
    """Upload the three files, wait for their cards, open Grad-CAM on the FAKE card; the cards as a dict."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(SPY)
    page.goto(url + "/")
    page.wait_for_selector("#models input[type=checkbox]")
    page.set_input_files("#files", _uploads())
    page.wait_for_function("() => document.querySelectorAll('.card.done').length === 3", timeout=TIMEOUT_MS)
    cards = {name: page.locator(f'.card[data-name="{name}"]') for name in (LONG_NAME, "5500.jpg", "bomb.png")}
    fake = cards["5500.jpg"]
    fake.locator('.answer[data-task="synthetic"] button.explain').click()
    fake.locator(".explanations img").wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("() => [...document.querySelectorAll('.explanations img')].every(i => i.naturalWidth > 0)",
                           timeout=TIMEOUT_MS)
    assert not errors, errors  # no script error, no CSP violation
    return cards


def _check_cards(page: Any, cards: dict[str, Any]) -> None:
    for name, want in ((LONG_NAME, "REAL"), ("5500.jpg", "FAKE")):
        card = cards[name]
        synthetic, adversarial = card.locator('.answer[data-task="synthetic"]'), card.locator(
            '.answer[data-task="adversarial"]')
        assert synthetic.locator("h3").inner_text().lower() == "ai-generated?"
        assert synthetic.locator(".verdict").inner_text().startswith(want)
        assert adversarial.locator("h3").inner_text().lower() == "attacked?"
        assert adversarial.locator(".verdict").inner_text().split()[0] in ("clean", "attacked")
        for answer in (synthetic, adversarial):  # probability and measured accuracy visible, not in a tooltip
            assert answer.locator(".prob").is_visible() and "P(" in answer.locator(".prob").inner_text()
            assert "test accuracy" in answer.locator(".by").inner_text()
        notes = card.locator("details.note")
        assert notes.count() == 1 and "JPEG" in notes.inner_text()  # said once per file, folded to a line or two
        assert notes.get_attribute("open") is None and notes.bounding_box()["height"] < 64
        assert card.locator(".answer").count() == 2  # the CIFAR-10 victims are not presented as detectors
        everything = card.locator("details.all")
        everything.locator("summary").click()
        assert "CIFAR-10 classifier" in everything.inner_text()
        assert everything.locator("li").count() == len(list_bundled())  # every bundled model, victims included
        assert "P(label 1)" not in card.inner_text()
    note = cards["5500.jpg"].locator("details.note")
    note.locator("summary").click()
    assert "erases most adversarial noise" in note.inner_text()  # the full warning, on demand
    bomb = cards["bomb.png"]
    assert bomb.locator(".thumb.placeholder").count() == 1 and bomb.locator(".error").count() >= 1
    decoded = page.evaluate("window.__decoded")
    assert "bomb.png" not in decoded and LONG_NAME in decoded  # thumbnails for the small files only


def _save(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("FAKESCOPE_SCREENSHOTS")
    if target:  # docs copies: palette PNGs, a fraction of the size
        os.makedirs(target, exist_ok=True)
        with Image.open(path) as im:
            im.convert("RGB").quantize(colors=128).save(os.path.join(target, f"{name}.png"), optimize=True)
    return path


def test_desktop_cards_gradcam_and_bomb(server: str, browser: Any, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    cards = _scan_and_explain(page, server)
    _check_cards(page, cards)
    assert _save(page, tmp_path, "desktop").stat().st_size > 10_000


def test_phone_fits_390px(server: str, browser: Any, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    page = context.new_page()
    cards = _scan_and_explain(page, server)
    _check_cards(page, cards)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate("document.body.scrollWidth") <= 390
    box = cards["5500.jpg"].locator(".explanations img").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    name = cards[LONG_NAME].locator(".name")
    assert name.bounding_box()["width"] <= 390  # the long file name wraps inside the card
    _save(page, tmp_path, "phone")
    context.close()


def _encoded(fmt: str, size: tuple[int, int], mode: str = "RGB", **kw: Any) -> bytes:
    buf = io.BytesIO()
    colour = (200, 40, 40, 128) if mode == "RGBA" else (200, 40, 40)
    Image.new(mode, size, colour).save(buf, fmt, **kw)
    return buf.getvalue()


def test_thumbnail_header_probe(server: str, browser: Any) -> None:
    """The page reads width and height from the header bytes of every format it previews, before any decode."""
    exif = Image.Exif()
    exif[0x010E] = "x" * 20_000  # a big APP1 segment before the frame header
    cases = {"PNG": _encoded("PNG", (37, 23)), "GIF": _encoded("GIF", (37, 23)), "BMP": _encoded("BMP", (37, 23)),
             "WebP lossy": _encoded("WEBP", (37, 23), quality=80),
             "WebP lossless": _encoded("WEBP", (37, 23), lossless=True),
             "WebP extended": _encoded("WEBP", (37, 23), "RGBA", quality=80),
             "JPEG": _encoded("JPEG", (37, 23), exif=exif.tobytes()),
             "JPEG progressive": _encoded("JPEG", (37, 23), progressive=True),
             "AVIF": _encoded("AVIF", (37, 23))}
    page = browser.new_page()
    page.goto(server + "/")
    for name, data in cases.items():
        dims = page.evaluate("(bytes) => probeDims(new Uint8Array(bytes).buffer)", list(data))
        assert dims is not None and (dims["w"], dims["h"]) == (37, 23), (name, dims)
    assert page.evaluate("() => probeDims(new TextEncoder().encode('not an image at all').buffer)") is None
    page.close()


def test_busy_server_is_asked_again(server: str, browser: Any) -> None:
    """A 503 with Retry-After (the server's answer when its queue is full) is retried; the card then fills in."""
    page = browser.new_page()
    busy = {"left": 1}

    def once_busy(route: Any) -> None:
        if busy["left"]:
            busy["left"] -= 1
            route.fulfill(status=503, headers={"Retry-After": "1"}, json={"detail": "server busy"})
        else:
            route.continue_()

    page.route("**/api/scan", once_busy)
    page.goto(server + "/")
    page.wait_for_selector("#models input[type=checkbox]")
    fake = samples_dir() / "FAKE" / "5500.jpg"
    page.set_input_files("#files", [{"name": fake.name, "mimeType": "image/jpeg", "buffer": fake.read_bytes()}])
    page.locator(".card.done").wait_for(timeout=TIMEOUT_MS)
    assert busy["left"] == 0
    assert page.locator('.answer[data-task="synthetic"] .verdict').inner_text().startswith("FAKE")
    page.close()
